"""Level-2 state per partition: what moves with a partition from one worker to the next.

The embedded mode snapshots each level-2 rule whole (correlation/snapshot.py). A worker holds the
state of several partitions in the same rules, so its snapshot is split: every key of every rule
routes to a partition by the function the publisher used for its events (cluster/partition.py),
applied to the host (or site) in the key. The snapshot of a partition (kept by
cluster/snapshots.py) holds the state of its keys in every rule, with where it was taken:

- `seq`: the last stream sequence of the partition whose events the state has seen (and stored);
- `store_pos`: the event store's position then: the events of the partition stored after it are
  exactly the ones processed after the snapshot (one writer per partition, positions increasing);
- `clock`: the correlation time then, so the events fed again see the same windows.

A key whose partition cannot be told (a rule `rules check --cluster` reports) stays where it is.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from correlator.cluster.check import SITE_ATTRIBUTE
from correlator.cluster.partition import host_key, partition_of
from correlator.correlation.core import Engine, KeyTable
from correlator.correlation.topology import TopologyRule
from correlator.inventory import Inventory

Saved = dict[str, tuple[str, Any]]  # rule -> (kind, its state in snapshot form), as Correlate.snapshot
PartOf = Callable[[Any], int | None]  # a key in snapshot form -> its partition (None: cannot tell)


@dataclass
class PartitionSnapshot:
    seq: int
    store_pos: int
    clock: float
    rules: Saved

    def encode(self) -> bytes:
        # Compressed: most then fit in the state bucket itself (cluster/snapshots.py).
        doc = {"seq": self.seq, "store_pos": self.store_pos, "clock": self.clock, "rules": self.rules}
        return zlib.compress(orjson.dumps(doc), 1)

    @staticmethod
    def decode(raw: bytes) -> PartitionSnapshot:
        doc = orjson.loads(zlib.decompress(raw))
        rules = {name: (kind, data) for name, (kind, data) in doc["rules"].items()}
        return PartitionSnapshot(int(doc["seq"]), int(doc["store_pos"]), float(doc["clock"]), rules)


class Partitioner:
    """The partition of a host, of a site and of a rule's key, as the publisher computes it."""

    def __init__(self, inventory: Inventory | None, by: str, partitions: int) -> None:
        self._inventory = inventory
        self._by = by
        self.partitions = partitions

    def of_host(self, host: str) -> int:
        return partition_of(host_key(host, self._inventory, self._by), self.partitions)

    def key_function(self, engine: Engine) -> PartOf:
        """How to route a key of this rule: by its host field, else (partitioning by site) its
        site attribute, else not at all."""
        if isinstance(engine, TopologyRule):
            return lambda ci: self.of_host(str(ci))  # keys are CIs, i.e. hosts
        fields = engine.group_by
        if "host" in fields:
            i = fields.index("host")
            return lambda k: self.of_host(str(k[i]))
        if self._by == "site" and SITE_ATTRIBUTE in fields:
            # `rules check --cluster` reports such a rule; when enrichment makes the attribute the
            # host's inventory site, as it usually does, the key goes where its events are.
            j = fields.index(SITE_ATTRIBUTE)
            return lambda k: partition_of(f"site:{k[j]}", self.partitions) if k[j] else None
        return lambda k: None


def split(engine: Engine, data: Any, route: PartOf) -> tuple[dict[int, Any], Any]:
    """One rule's snapshot cut by partition, and what could not be routed (`data` in JSON form)."""
    if isinstance(engine, TopologyRule):
        return _split_topology(data, route)
    if isinstance(data, list):
        return _split_entries(data, route, 0)
    if isinstance(data, dict):  # several tables, each a list of (key, state) entries
        parts: dict[int, Any] = {}
        rest: dict[str, Any] = {}
        for name, entries in data.items():
            by_part, left = _split_entries(entries, route, 0)
            for p, got in by_part.items():
                parts.setdefault(p, {})[name] = got
            rest[name] = left
        for doc in parts.values():
            for name in data:
                doc.setdefault(name, [])
        return parts, rest
    return {}, data  # no per-key state (None)


def _split_topology(data: Any, route: PartOf) -> tuple[dict[int, Any], Any]:
    if isinstance(data, list):  # an old format: the down table only
        data = {"down": data}
    fields = {"down": 0, "settling": 0, "held": 0, "recent": 1}  # where the CI sits in each entry
    parts: dict[int, Any] = {}
    rest: dict[str, Any] = {}
    for name, at in fields.items():
        by_part, left = _split_entries(list(data.get(name, ())), route, at)
        for p, got in by_part.items():
            parts.setdefault(p, {n: [] for n in fields})[name] = got
        rest[name] = left
    return parts, rest


def _split_entries(entries: list[Any], route: PartOf, at: int) -> tuple[dict[int, list[Any]], list[Any]]:
    parts: dict[int, list[Any]] = {}
    rest: list[Any] = []
    for entry in entries:
        p = route(entry[at])
        if p is None:
            rest.append(entry)
        else:
            parts.setdefault(p, []).append(entry)
    return parts, rest


def merge(a: Any, b: Any) -> Any:
    """Two snapshots of one rule in split form, as one (entries of one rule's tables concatenated)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    if isinstance(a, list):  # an old topology format beside a new one
        a = {"down": a}
    if isinstance(b, list):
        b = {"down": b}
    return {name: list(a.get(name, ())) + list(b.get(name, ())) for name in {*a, *b}}


def state_of(engine: Engine) -> Any:
    """The rule's state in JSON form (what a snapshot read back gives), to cut and merge."""
    return orjson.loads(orjson.dumps(engine.snapshot()))


def replace(engine: Engine, data: Any) -> None:
    """Make `data` the rule's whole state: the tables emptied, then restored from it."""
    for value in vars(engine).values():
        if isinstance(value, KeyTable):
            value.clear()
    if isinstance(engine, TopologyRule):
        engine.settling = {}
        engine.held = {}
        engine.recent = deque()
    if data is not None:
        engine.restore(data)
    engine.rearm()
