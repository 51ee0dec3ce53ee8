"""Partitioning for the cluster: the publisher's key, and `rules check --cluster` on rule sets whose
keys do or do not let one worker hold all the state of a key."""

from __future__ import annotations

from pathlib import Path

from correlator.cluster.check import unpartitionable
from correlator.cluster.partition import host_key, partition_of
from correlator.inventory import load_inventory
from correlator.rules.loader import load_rules

TOPOLOGY = """
cis:
  core: {}
  dist: {parents: [core]}
  far: {parents: [core]}
"""

RULES = """
rules:
  - name: root-cause
    kind: topology
    topology: ../topology.yaml
    down: {type: nodeDown}
    up: {type: nodeUp}
  - name: per-host
    kind: threshold
    match: {type: cpuHigh}
    count: 2
    within: 1m
  - name: per-resource
    kind: threshold
    match: {type: ifErrors}
    group_by: [resource]
    count: 2
    within: 1m
"""

INVENTORY = """
hosts:
  core: {site: par1}
  dist: {site: par1}
  far: {site: lyo1}
"""


def setup(tmp_path: Path, inventory: str = INVENTORY, rules_text: str = RULES) -> tuple[object, object]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(rules_text)
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    (tmp_path / "inventory.yaml").write_text(inventory)
    inv = load_inventory(tmp_path / "inventory.yaml")
    return load_rules(rules, tmp_path / "inventory.yaml"), inv


def test_key_is_the_site_of_the_host_else_the_host(tmp_path):
    _, inv = setup(tmp_path)
    assert host_key("dist", inv, "site") == host_key("core", inv, "site") == "site:par1"
    assert host_key("unknown", inv, "site") == "host:unknown"
    assert host_key("dist", inv, "host") == "host:dist"
    p = partition_of("site:par1", 16)
    assert 0 <= p < 16 and p == partition_of("site:par1", 16)  # stable across processes (crc32)


def test_rules_check_cluster_names_each_rule_that_cannot_be_partitioned(tmp_path):
    rs, inv = setup(tmp_path)
    problems = unpartitionable(rs, "site", inv)
    assert len(problems) == 2, problems
    topo, resource = sorted(problems, key=lambda p: "per-resource" in p)
    assert "rule root-cause (topology)" in topo and "far (site lyo1) below core (site par1)" in topo
    assert "rule per-resource (threshold)" in resource and "group_by [resource]" in resource
    assert str(tmp_path / "rules" / "r.yaml") in resource
    # by host, no topology spanning hosts can be partitioned
    by_host = unpartitionable(rs, "host", inv)
    assert any("partition by site" in p for p in by_host) and len(by_host) == 2


def test_a_topology_within_one_site_is_fine(tmp_path):
    rs, inv = setup(tmp_path, INVENTORY.replace("lyo1", "par1"))
    [only] = unpartitionable(rs, "site", inv)
    assert "per-resource" in only


def test_the_command_exits_1_and_lists_the_rules(tmp_path, capsys, monkeypatch):
    from correlator.cli import main

    setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # no correlator.yaml here: the defaults (partition_by: site)
    rc = main(["rules", "check", "--cluster", str(tmp_path / "rules"), "--inventory", "inventory.yaml"])
    err = capsys.readouterr().err
    assert rc == 1 and "cluster: 2 rule(s) cannot be partitioned by site" in err
    assert main(["rules", "check", str(tmp_path / "rules")]) == 0  # without --cluster: as before


def test_a_key_by_the_site_attribute_is_reported_it_is_not_the_partition_key(tmp_path):
    """The partition key is the inventory site of the event's host; `attributes.site` is whatever
    the event carries (the sender's value, an enrichment by another key), so a key of it can hold
    events of several partitions. With the host in the key, it cannot."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        """
rules:
  - name: per-site
    kind: threshold
    match: {type: siteAlarm}
    group_by: [attributes.site]
    count: 2
    within: 1m
  - name: per-site-and-host
    kind: threshold
    match: {type: siteAlarm}
    group_by: [attributes.site, host]
    count: 2
    within: 1m
"""
    )
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    rs = load_rules(rules, tmp_path / "inventory.yaml")
    inv = load_inventory(tmp_path / "inventory.yaml")
    [by_site] = unpartitionable(rs, "site", inv)
    assert "rule per-site (threshold): group_by [attributes.site] does not include host" in by_site
    assert "the partition key is the inventory site of the event's host" in by_site
    [by_host] = unpartitionable(rs, "host", inv)
    assert "rule per-site (threshold)" in by_host


def test_a_filter_rule_that_sets_host_is_reported(tmp_path):
    """The ingest process routes an event by the host it arrived with; a level-1 rule on the worker
    that moves it to another host would split that host's level-2 keys over workers."""
    rules = (
        RULES
        + """
  - name: rehost
    match: {type: trap}
    set: {host: "{attributes.agent}"}
  - name: retitle
    match: {type: trap}
    set: {message: "from {host}"}
"""
    )
    rs, inv = setup(tmp_path, rules_text=rules)
    problems = unpartitionable(rs, "site", inv)
    [rehost] = [p for p in problems if "rehost" in p]
    assert "rule rehost (filter): sets host" in rehost and str(tmp_path / "rules" / "r.yaml") in rehost
    assert not any("retitle" in p for p in problems)
