"""A worker's level-2 snapshot round (cluster/handover.py): one cut of each rule's state serves the
snapshot of the partitions it owns and the sweep of the keys of partitions it gave up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from correlator.cluster import handover
from correlator.cluster.handover import StateKeeper
from correlator.cluster.state import PartitionSnapshot, state_of
from correlator.event import Event
from correlator.store.sqlite import SqliteEventStore
from tests.unit.cluster.test_partition_state import PARTS, rules, two_hosts
from tests.unit.correlation.support import E, Run


class _Owned:
    """The partitions the worker consumes and the last stream sequence stored of each."""

    def __init__(self, *partitions: int) -> None:
        self.partitions = sorted(partitions)

    def covered(self, p: int) -> int | None:
        return 5 if p in self.partitions else None


class _Store:
    async def position(self) -> int:
        return 42


def keeper(run: Run, owned: _Owned, store: Any = None) -> tuple[StateKeeper, dict[int, PartitionSnapshot]]:
    runner = SimpleNamespace(pipeline=run.pipeline, lock=asyncio.Lock())
    bus = SimpleNamespace(state=None, settings=SimpleNamespace(stream="test"))  # no snapshot key held
    k = StateKeeper(bus, owned, runner, store or _Store(), run.clock, PARTS)  # type: ignore[arg-type]
    written: dict[int, PartitionSnapshot] = {}

    async def write(p: int, doc: PartitionSnapshot) -> None:
        written[p] = doc

    k._write = write  # type: ignore[method-assign]
    return k, written


async def test_a_save_cuts_each_rule_once_and_drops_the_keys_of_partitions_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = two_hosts()
    run = Run(*rules())
    await run.feed(E(0, "linkDown", a, resource="x"), E(1, "linkDown", b, resource="y"), E(2, "auth", b))
    k, written = keeper(run, _Owned(PARTS.of_host(a)))  # b's partition given up mid-batch
    cuts: list[str] = []

    def counted(engine: Any) -> Any:
        cuts.append(engine.name)
        return state_of(engine)

    monkeypatch.setattr(handover, "state_of", counted)
    await k.save()
    assert sorted(cuts) == ["pair", "th"]  # one serialisation per rule, under the pipeline's lock
    [(p, doc)] = written.items()
    assert p == PARTS.of_host(a) and (doc.seq, doc.store_pos) == (5, 42)
    pending = doc.rules["pair"][1]["pending"]
    assert [entry[0] for entry in pending] == [[a, "x"]]
    # b's keys are gone from the rules: no timer of theirs fires on this worker
    later = await run.advance(40)
    assert [(ev.type, ev.host) for ev in later] == [("pair.timeout", a)]
    assert doc.rules["pair"][1]["pending"] == pending  # the snapshot does not follow the live rule


class _CountingStore(SqliteEventStore):
    """The event store, counting the events it reads back and parses."""

    parsed = 0

    async def after(self, pos: int, limit: int, hosts: list[str] | None = None) -> list[tuple[int, Event]]:
        rows = await super().after(pos, limit, hosts)
        self.parsed += len(rows)
        return rows


async def test_a_takeover_reads_back_only_its_partitions_events(tmp_path: Path) -> None:
    a, b = two_hosts()
    store = _CountingStore(tmp_path / "events.db")
    await store.open()
    try:
        await store.write([E(1, "auth", b), E(2, "auth", a), E(3, "auth", b), E(4, "auth", a)])
        run = Run(*rules())
        k, _ = keeper(run, _Owned(PARTS.of_host(a)), store)
        snap = PartitionSnapshot(5, 0, 0.0, {"th": ("threshold", []), "pair": ("pair", None)})
        fed = await k._refeed(run.stage, PARTS.of_host(a), snap)
        assert fed == 2 and store.parsed == 2  # b's events are neither read nor parsed
        out = await run.feed(E(10, "auth", a))  # a's third: the two fed again were counted
        assert [(ev.type, ev.host) for ev in out if ev.source == "correlator"] == [("storm", a)]
    finally:
        await store.close()


async def test_a_takeover_drops_other_partitions_keys_without_copying_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = two_hosts()
    run = Run(*rules())
    await run.feed(E(0, "linkDown", a, resource="x"), E(1, "linkDown", b, resource="y"))
    k, written = keeper(run, _Owned(PARTS.of_host(a)))
    copies: list[Any] = []
    real = handover.orjson

    def dumps(obj: Any) -> bytes:
        copies.append(obj)
        return real.dumps(obj)

    monkeypatch.setattr(handover, "orjson", SimpleNamespace(dumps=dumps, loads=real.loads))
    k._cut(run.stage, {})  # what a takeover runs once its rules are restored: no snapshot shares the cuts
    assert copies == [] and written == {}
    later = await run.advance(40)
    assert [(ev.type, ev.host) for ev in later] == [("pair.timeout", a)]  # b's key went, a's stayed
