"""After a crash (no shutdown snapshot), start-up feeds each rule the events stored since its last
snapshot, so the rebuilt state equals the state at the crash."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from correlator.clock import Clock
from correlator.correlation import lifecycle, snapshot
from correlator.correlation.core import ENGINE_METRICS
from correlator.correlation.stage import Correlate
from correlator.event import Event
from correlator.pipeline import Pipeline, StageContext
from correlator.store.sqlite import SqliteEventStore

from .support import E
from .test_snapshot import rules


async def process(pipeline: Pipeline, clock: Clock, store: SqliteEventStore, *events: Event) -> None:
    """What the runner does with a batch: run the pipeline, store the output."""
    out = await pipeline.run(list(events), StageContext(clock, live=False))
    await store.write(out)


def state(stage: Correlate) -> dict[str, object]:
    return {name: orjson.loads(body) for name, _, body, _, _ in snapshot.encode(stage)}


async def test_state_at_the_crash_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
        stage = Correlate(rules())
        pipeline = Pipeline([stage])
        clock = Clock(0.0)
        await process(pipeline, clock, store, E(0, "auth"), E(1, "linkDown"), E(2, "heartbeat"))
        await lifecycle.save_state(pipeline, tmp_path, asyncio.Lock(), store)
        await process(
            pipeline,
            clock,
            store,
            E(3, "auth"),
            E(4, "nodeDown", "sw1", site="par"),
            E(5, "link", severity="major"),
            E(6, "link", severity="clear"),
            E(8, "a"),
            E(9, "linkUp"),  # closes the pair opened before the snapshot
            E(40, "linkDown", "r2"),  # its pair timed out at 70? no: still pending at the crash
        )
        at_crash = state(stage)
        # crash: no shutdown snapshot; a new process starts from the files
        second = Correlate(rules())
        fed = await lifecycle.recover(Pipeline([second]), tmp_path, store, Clock(41.0))
        assert fed >= 8
        assert state(second) == at_crash
        # and the rebuilt state goes on: r1's heartbeat is missed at 62, the r2 pair times out at 70,
        # r1's sequence started at 8 times out at 108
        live = Clock(41.0)
        second.bind(live)
        live.advance_to(120)
        out = await Pipeline([second]).flush(StageContext(live, live=True))
        assert [(e.type, e.host, e.time) for e in out] == [
            ("heartbeat.missed", "r1", 62),
            ("pair.timeout", "r2", 70),
            ("seq.timeout", "r1", 108),
        ]
    finally:
        await store.close()


async def test_a_rule_new_since_the_snapshot_starts_empty(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
        first = Correlate(rules()[:1])
        await lifecycle.save_state(Pipeline([first]), tmp_path, asyncio.Lock(), store)
        await process(Pipeline([first]), Clock(0.0), store, E(0, "linkDown"))
        second = Correlate(rules()[:2])
        await lifecycle.recover(Pipeline([second]), tmp_path, store, Clock(1.0))
        assert second.engines[1].keys() == 0
    finally:
        await store.close()


def _fires() -> float:
    return sum(s.value for m in ENGINE_METRICS.collect() for s in m.samples if s.name.endswith("_total"))


async def test_a_far_future_stamp_does_not_walk_the_clock_and_an_open_window_still_times_out(
    tmp_path: Path,
) -> None:
    """Stamps in 2050 and 9999 received at 5 and 6 are correlated at their arrival, as live: the
    re-feed neither steps the clock decades ahead (a sweep a minute) nor times out the pair window
    still open at the crash and throws its result away; the timeout fires live and is kept."""
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
        first = Correlate(rules(), wall=lambda: 6.0)
        pipeline = Pipeline([first])
        clock = Clock(0.0)
        await lifecycle.save_state(pipeline, tmp_path, asyncio.Lock(), store)
        future = [E(2_524_608_000, "auth"), E(253_402_300_799, "auth")]  # 2050-01-01, 9999-12-31
        future[0].received, future[1].received = 5.0, 6.0
        await process(pipeline, clock, store, E(1, "linkDown", "r2"), E(4, "linkDown", "r3"))
        out = await first(future, StageContext(clock, live=True))  # live: clamped to the wall clock
        await store.write(out)
        await process(pipeline, clock, store, E(6, "linkUp", "r3"))
        # crash at 10: r2's pair window (30 s) is still open
        before = _fires()
        second = Correlate(rules())
        live = Clock(10.0)
        assert await lifecycle.recover(Pipeline([second]), tmp_path, store, live) >= 5
        assert _fires() == before  # the hooks run again by the re-feed are not counted twice
        assert [e.counters.matches for e in second.engines] == [0] * len(second.engines)  # nor matches
        assert live.next_deadline() is not None and live.next_deadline() <= 31.0
        live.advance_to(40)
        out = await Pipeline([second]).flush(StageContext(live, live=True))
        assert [(e.type, e.host, e.time) for e in out] == [("pair.timeout", "r2", 31)]
        assert _fires() == before + 1  # the timeout fired live, counted once
    finally:
        await store.close()
