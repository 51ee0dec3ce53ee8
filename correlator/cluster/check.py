"""`correlator rules check --cluster`: the rules whose level-2 state could not live on one worker.

A worker owns the partitions of some keys (docs/cluster.md): a rule is right in the cluster when all
the events of one of its keys land in one partition, i.e. when its key determines the partition key.
"""

from __future__ import annotations

from correlator.correlation.core import Engine
from correlator.correlation.topology import TopologyRule
from correlator.inventory import Inventory
from correlator.rules.filter import FilterRule
from correlator.rules.ruleset import RuleSet

# The event attribute inventory enrichment fills with the host's site (docs/rules.md). It is not
# the partition key, which is the inventory site of the host itself (cluster/partition.py).
SITE_ATTRIBUTE = "attributes.site"


def unpartitionable(rules: RuleSet, partition_by: str, inventory: Inventory) -> list[str]:
    """One line per rule that cannot be partitioned, saying why (empty: the set is fine)."""
    out: list[str] = []
    for r in rules.rules:
        engine = r.compiled
        where = f"{r.info.position.file}:{r.info.position.line}"
        if isinstance(engine, FilterRule):
            # Level 1 looks at one event at a time, but it runs on the worker, after the ingest
            # process chose the partition by the host the event arrived with.
            if engine.sets_host:
                out.append(
                    f"{where}: rule {r.info.name} (filter): sets host after the event was routed by the "
                    "host it arrived with: level-2 keys by the new host would reach several workers"
                )
            continue
        if not isinstance(engine, Engine):
            continue
        if isinstance(engine, TopologyRule):
            reason = _topology_reason(engine, partition_by, inventory)
        else:
            reason = _key_reason(engine.group_by, partition_by)
        if reason:
            out.append(f"{where}: rule {r.info.name} ({r.info.kind}): {reason}")
    return out


def _key_reason(group_by: tuple[str, ...], partition_by: str) -> str:
    """Only `host` makes a key partition-local: the partition key is a function of the host (its
    inventory site, else itself) and of nothing an event carries. A key grouped by the event's
    site attribute holds the events of hosts whose inventory site is another one or none (the
    sender's value kept, an enrichment by another key, a host outside the inventory)."""
    if "host" in group_by:
        return ""  # one host is always in one partition (by host, or by its site)
    shown = ", ".join(group_by) or "nothing"
    why = f"group_by [{shown}] does not include host: one key's events would reach several workers"
    if partition_by == "site" and SITE_ATTRIBUTE in group_by:
        why += (
            f"; the partition key is the inventory site of the event's host, which {SITE_ATTRIBUTE}"
            " need not be (a sender's value, an enrichment by another key, a host outside the inventory)"
        )
    return why


def _topology_reason(rule: TopologyRule, partition_by: str, inventory: Inventory) -> str:
    """A topology tree must lie within one partition: by site, every CI in its ancestors' site."""
    topo = rule.topology
    if partition_by == "host":
        if topo.upstream:
            return "a topology spans several hosts: partition by site (cluster.partition_by: site)"
        return ""
    crossing: list[str] = []
    for ci in sorted(topo.upstream):
        site = _site(inventory, ci)
        for up in topo.ancestors(ci):
            if _site(inventory, up) != site:
                crossing.append(
                    f"{ci} ({site or 'no site'}) below {up} ({_site(inventory, up) or 'no site'})"
                )
    if not crossing:
        return ""
    more = f" and {len(crossing) - 3} more" if len(crossing) > 3 else ""
    return "topology crosses sites, give both CIs one inventory site: " + "; ".join(crossing[:3]) + more


def _site(inventory: Inventory, ci: str) -> str:
    asset = inventory.get(ci)
    return f"site {asset.site}" if asset is not None and asset.site else "no site"
