"""Incident commits run in the background, one after another: ids given in memory from a reserved
block, the order kept, a full disk retried, a commit whose answer was lost not written twice, a
refused commit dropped and memory read again, reads and callers bounded, and the journal acked only
once the batch's incident changes are stored."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from correlator.clock import Clock
from correlator.event import Event, dumps_events
from correlator.incidents.model import Status
from correlator.incidents.service import CommitFailed, IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.incidents.stage import IncidentStage
from correlator.incidents.store import COMMIT_SET, IncidentQuery, IncidentStore, Rows
from correlator.pipeline import Pipeline, StageContext
from correlator.queue.journal import JournalQueue
from correlator.runner import PipelineRunner
from tests.unit.core.test_runner import GatedStore, wait_for
from tests.unit.incidents.conftest import T0, event, request


class Faulty:
    """A real incident store whose `write` waits on a gate and fails as the test says."""

    def __init__(self, store: IncidentStore) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.failures: list[Exception] = []  # raised by the next writes, in order
        self.unanswered: list[Exception] = []  # raised by the next writes once they are stored
        self.written: list[list[int]] = []  # the ids of the new incidents of each stored write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def write(self, rows: Rows, retry: bool = False) -> None:
        self.started.set()
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        await self._store.write(rows, retry)
        self.written.append([r[-1] for r in rows.new])
        if self.unanswered:  # stored, but the answer is lost (a connection dropped during COMMIT)
            raise self.unanswered.pop(0)


def stage_errors() -> float:
    return REGISTRY.get_sample_value("correlator_stage_errors_total", {"stage": "incidents"}) or 0.0


async def opened(store_factory, clock: Clock) -> tuple[IncidentService, Faulty]:
    store = Faulty(store_factory())
    svc = IncidentService(store, parse_settings({}), clock)  # type: ignore[arg-type]
    svc.retry_seconds = 0.0
    await svc.open()
    return svc, store


@contextlib.asynccontextmanager
async def serving(store_factory, clock: Clock) -> AsyncIterator[tuple[IncidentService, Faulty]]:
    svc, store = await opened(store_factory, clock)
    try:
        yield svc, store
    finally:
        await svc.close()


async def test_apply_does_not_wait_and_commits_keep_their_order(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    try:
        store.gate.clear()
        [a] = await svc.apply([request("open", T0, key="a")])
        [b] = await svc.apply([request("open", T0, key="b")])
        await svc.apply([request("resolve", T0 + 1, key="a")])
        assert (a.id, b.id) == (1, 2)  # given at once, in memory
        assert svc.pending is not None and store.written == []
        store.gate.set()
        await svc.settled()
        assert store.written == [[1], [2], []]
        stored = (await svc.query(IncidentQuery())).incidents
        assert sorted((i.id, i.status.value) for i in stored) == [(1, "resolved"), (2, "new")]
        _, timeline = await svc.get(1)
        assert [e.action for e in timeline] == ["open", "event", "event", "resolve"]
    finally:
        await svc.close()


async def test_a_commit_writes_the_incident_as_it_was_when_made(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    try:
        store.gate.clear()
        [a] = await svc.apply([request("open", T0, key="a", title="first")])
        first = svc.pending
        a.title = "changed later"  # the next batch changes the same object in memory
        store.gate.set()
        assert first is not None and await first
        got = await store._store.get(a.id)
        assert got is not None and got.title == "first"
    finally:
        await svc.close()


async def test_ids_continue_after_a_restart_and_a_shared_writer_takes_the_next(store_factory, clock):
    svc, _ = await opened(store_factory, clock)
    await svc.apply([request("open", T0, key="a"), request("open", T0, key="b")])
    await svc.close()  # stores the commits in flight
    svc, _ = await opened(store_factory, clock)
    [c] = await svc.apply([request("open", T0, key="c")])
    assert c.id == 3
    await svc.close()
    svc, _ = await opened(store_factory, clock)
    svc.shared = True  # the store's sequence was moved past the ids given
    try:
        [d] = await svc.apply([request("open", T0, key="d")])
        assert d.id == 4
    finally:
        await svc.close()


async def test_a_full_disk_is_retried_until_the_commit_is_stored(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    try:
        errors = stage_errors()
        store.failures = [sqlite3.OperationalError("database or disk is full"), OSError("no space")]
        [a] = await svc.apply([request("open", T0, key="a")])
        assert svc.pending is not None and await svc.pending
        assert store.written == [[a.id]] and stage_errors() == errors
        inc = await svc.act(a.id, "ack", "ann", {})  # a person's change returns once stored
        assert (await store._store.get(inc.id)).status.value == "acknowledged"  # type: ignore[union-attr]
    finally:
        await svc.close()


async def test_a_refused_commit_drops_its_changes_and_those_after_it_then_memory_is_read_again(
    store_factory, clock
):
    svc, store = await opened(store_factory, clock)
    try:
        [a] = await svc.apply([request("open", T0, key="a")])
        await svc.settled()
        errors = stage_errors()
        store.gate.clear()
        store.failures = [ValueError("a bug")]
        await svc.apply([request("open", T0 + 1, key="b")])  # refused
        await svc.apply([request("update", T0 + 2, key="a")])  # made on top of it: dropped too
        assert svc.active_for("b") is not None
        store.gate.set()
        await svc.settled()
        assert stage_errors() == errors + 2
        [c] = await svc.apply([request("open", T0 + 3, key="c")])  # memory was read again first
        assert svc.active_for("b") is None and svc.active_for("a").event_count == 1  # type: ignore[union-attr]
        assert c.id == 3  # the lost id (2) is skipped, never given twice
        await svc.settled()
        ids = sorted(i.id for i in (await svc.query(IncidentQuery())).incidents)
        assert ids == [a.id, c.id]
        store.failures = [ValueError("a bug")]
        try:
            await svc.act(a.id, "ack", "ann", {})
            raise AssertionError("expected CommitFailed")
        except CommitFailed:
            pass
    finally:
        await svc.close()


async def test_reads_do_not_hang_while_a_commit_cannot_be_stored(store_factory, clock):
    async with serving(store_factory, clock) as (svc, store):
        svc.read_wait_seconds = 0.01
        store.gate.clear()  # the commit waits as one retrying a full disk does
        [a] = await svc.apply([request("open", T0, key="a")])
        page = await asyncio.wait_for(svc.query(IncidentQuery()), 5)
        assert page.incidents == []  # what the store holds
        inc, timeline = await asyncio.wait_for(svc.get(a.id), 5)
        assert inc is a and timeline == []  # the incident as it is, its stored timeline
        store.gate.set()
        await svc.settled()
        assert [i.id for i in (await svc.query(IncidentQuery())).incidents] == [a.id]


async def test_a_read_on_sqlite_never_sees_a_commit_that_is_rolled_back(tmp_path, clock):
    """A read during a commit's transaction (between its writes and a COMMIT that fails, to be
    retried) shows what is committed, and does not wait for that transaction."""
    async with serving(lambda: SqliteIncidentStore(tmp_path / "incidents.db"), clock) as (svc, store):
        svc.read_wait_seconds = 0.0
        db = store._store.db
        execute = db.execute
        written, gate = asyncio.Event(), asyncio.Event()

        async def paused(sql: str, *args: Any) -> Any:
            if sql == "COMMIT" and written.is_set() and not gate.is_set():  # the commit's, once
                await gate.wait()
                raise sqlite3.OperationalError("database or disk is full")  # rolled back, retried
            result = await execute(sql, *args)
            if sql == COMMIT_SET:  # its rows and token written, its COMMIT next
                written.set()
            return result

        db.execute = paused  # type: ignore[method-assign]
        [a] = await svc.apply([request("open", T0, key="a")])
        try:
            await asyncio.wait_for(written.wait(), 5)
            assert (await asyncio.wait_for(svc.query(IncidentQuery()), 5)).incidents == []
            assert await asyncio.wait_for(store.get(a.id), 5) is None
            assert await asyncio.wait_for(store.timeline(a.id), 5) == []
        finally:
            gate.set()
        await asyncio.wait_for(svc.settled(), 5)
        assert [i.id for i in (await svc.query(IncidentQuery())).incidents] == [a.id]
        assert [e.action for e in await store.timeline(a.id)] == ["open", "event"]


async def test_ids_are_reserved_in_the_store_before_they_are_given(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    svc.id_block = 2
    try:
        store.gate.clear()
        [a] = await svc.apply([request("open", T0, key="a")])
        after_crash = store_factory()  # what a restart would read now, before the commit
        await after_crash.open()
        try:
            assert await after_crash.last_id() >= a.id
            # A block holds at least twice the batch's new incidents: a storm reserves rarely.
            many = await svc.apply([request("open", T0, key=f"k{n}") for n in range(5)])
            assert await after_crash.last_id() >= many[-1].id + 5
        finally:
            await after_crash.close()
        store.gate.set()
    finally:
        await svc.close()
    svc, store = await opened(store_factory, clock)  # a clean stop gave the unused ids back
    try:
        [b] = await svc.apply([request("open", T0, key="b")])
        assert b.id == many[-1].id + 1
    finally:
        await svc.close()


async def test_the_ids_of_a_refused_commit_are_not_given_again_after_a_crash(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    try:
        await svc.apply([request("open", T0, key="a")])
        store.failures = [ValueError("a bug")]
        [b] = await svc.apply([request("open", T0, key="b")])  # refused: b's id reached no store
        await svc.settled()
        restarted, _ = await opened(store_factory, clock)  # as after a crash: `svc` never stopped
        try:
            [c] = await restarted.apply([request("open", T0, key="c")])
            assert c.id > b.id
        finally:
            await restarted.close()
    finally:
        await svc.close()


async def test_a_commit_stored_whose_answer_was_lost_is_not_written_again(store_factory, clock):
    async with serving(store_factory, clock) as (svc, store):
        errors = stage_errors()
        store.unanswered = [ConnectionResetError("connection lost during COMMIT")]
        [a] = await svc.apply([request("open", T0, key="a")])
        await svc.apply([request("update", T0 + 1, key="a")])  # on top of it
        await asyncio.wait_for(svc.settled(), 5)
        assert stage_errors() == errors  # not taken for a refused commit
        store.unanswered = [ConnectionResetError("connection lost during COMMIT")]
        await asyncio.wait_for(svc.act(a.id, "comment", "ann", {"text": "once"}), 5)
        _, timeline = await svc.get(a.id)
        assert [e.action for e in timeline] == ["open", "event", "event", "comment"]
        got = await store._store.get(a.id)
        assert got is not None and got.event_count == 2


async def test_commits_in_flight_are_bounded(store_factory, clock):
    async with serving(store_factory, clock) as (svc, store):
        store.gate.clear()

        async def storm() -> None:  # as replay: never waits for a commit itself
            for n in range(20):
                await svc.apply([request("open", T0, key=f"k{n}")])

        task = asyncio.create_task(storm())
        # The apply after the 8th commit in flight waits for the oldest, before its changes.
        await wait_for(lambda: svc.active_for(f"k{svc.max_in_flight - 1}") is not None)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done() and svc.active_for(f"k{svc.max_in_flight}") is None
        store.gate.set()
        await asyncio.wait_for(task, 5)
        await svc.settled()
        assert len(store.written) == 20


async def test_a_change_waiting_for_room_has_changed_nothing_yet(store_factory, clock):
    """Waiting for a commit in flight (a full disk retried) or for ids: memory holds whole changes
    only, and a change cancelled while it waits leaves no trace."""
    async with serving(store_factory, clock) as (svc, store):
        svc.max_in_flight = 1
        store.gate.clear()
        [a] = await svc.apply([request("open", T0, key="a")])
        waiting = asyncio.create_task(
            svc.apply([request("open", T0, key="b"), request("update", T0, key="a")])
        )
        await asyncio.wait_for(store.started.wait(), 5)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not waiting.done()
        assert svc.active_for("b") is None and a.event_count == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        refusals = [OSError("no space")] * 3
        reserving = asyncio.Event()
        reserve = store._store.reserve_ids

        async def full_disk(ceiling: int) -> None:
            reserving.set()
            if refusals:
                raise refusals.pop()
            await reserve(ceiling)

        store.reserve_ids = full_disk  # type: ignore[method-assign]
        svc._ceiling = svc._last_id  # the block is used up: b needs a new one
        store.gate.set()
        await svc.settled()
        svc.retry_seconds = 3600.0  # the reservation waits, as during a long outage
        waiting = asyncio.create_task(svc.apply([request("open", T0, key="b")]))
        await asyncio.wait_for(reserving.wait(), 5)
        assert svc.active_for("b") is None
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        svc.retry_seconds = 0.0
        [b] = await svc.apply([request("open", T0, key="b")])
        assert b.id == a.id + 1  # the cancelled changes took no id
        await svc.settled()
        got = await svc.get(b.id)
        assert got[0] is b and a.event_count == 1


async def test_ids_refused_for_good_drop_a_batch_without_raising_and_fail_a_persons_change(
    store_factory, clock
):
    async with serving(store_factory, clock) as (svc, store):
        [a] = await svc.apply([request("open", T0, key="a")])
        svc._ceiling = svc._last_id  # the block is used up

        async def refused(ceiling: int) -> None:
            raise ValueError("a bug")

        store.reserve_ids = refused  # type: ignore[method-assign]
        errors = stage_errors()
        assert await svc.apply([request("open", T0, key="b"), request("update", T0, key="a")]) == []
        assert stage_errors() == errors + 1
        assert svc.active_for("b") is None and a.event_count == 1  # nothing of the batch was made
        with pytest.raises(CommitFailed):
            await svc.create("ann", {"title": "by hand"})
        assert [i.id for i in (await svc.query(IncidentQuery())).incidents] == [a.id]
        await svc.act(a.id, "ack", "ann", {})  # opens nothing: needs no id


async def test_nothing_is_committed_once_the_service_stops(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    [a] = await svc.apply([request("open", T0, key="a")])
    clock.advance_to(T0 + 10)
    store.gate.clear()
    [b] = await svc.apply([request("open", T0 + 10, key="b")])
    svc.finish_seconds = 0.0
    store.failures = [ValueError("a bug")]  # refused: memory is to be read again
    store.gate.set()
    await svc.close()
    writes = len(store.written)
    # A deadline run the scheduler started, a person's change: neither reaches the closed store,
    # nor loops reading memory again from it.
    with pytest.raises(CommitFailed):
        await asyncio.wait_for(svc.act(a.id, "ack", "ann", {}), 5)
    svc._lost = False
    svc._next_due = T0
    with pytest.raises(CommitFailed):
        await asyncio.wait_for(svc.run_due(T0 + 10), 5)
    with pytest.raises(CommitFailed):
        await asyncio.wait_for(svc.apply([request("open", T0 + 10, key="c")]), 5)
    assert len(store.written) == writes and b.status is Status.NEW


async def test_a_change_abandoned_at_stop_fails_rather_than_cancels_its_caller(store_factory, clock):
    svc, store = await opened(store_factory, clock)
    [a] = await svc.apply([request("open", T0, key="a")])
    await svc.settled()
    store.gate.clear()
    acting = asyncio.create_task(svc.act(a.id, "ack", "ann", {}))
    await asyncio.wait_for(store.started.wait(), 5)
    svc.finish_seconds = 0.0
    await svc.close()  # the commit cannot finish: abandoned
    with pytest.raises(CommitFailed):
        await asyncio.wait_for(acting, 5)


async def test_a_change_that_changed_nothing_returns_once_those_before_it_are_stored(store_factory, clock):
    async with serving(store_factory, clock) as (svc, store):
        [a] = await svc.apply([request("open", T0, key="a")])
        await svc.settled()
        await svc.act(a.id, "resolve", "ann", {})
        clock.advance_to(T0 + 10)
        store.gate.clear()
        [c] = await svc.apply([request("open", T0 + 10, key="c")])
        svc._next_due = T0  # a deadline gone stale: run_due finds nothing due, stores nothing
        running = asyncio.create_task(svc.run_due(T0 + 10))
        written_when_done: list[list[list[int]]] = []
        running.add_done_callback(lambda _: written_when_done.append(list(store.written)))
        store.gate.set()
        assert await asyncio.wait_for(running, 5) == 0
        assert written_when_done == [[[a.id], [], [c.id]]]  # returned once c's commit was stored
        assert (await store._store.get(a.id)).status is Status.RESOLVED  # type: ignore[union-attr]


class Requester:
    """Asks for an incident for each event, as correlation does."""

    name = "requests"

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        ctx.responses.extend(request("open", T0, key=e.id) for e in events)
        return events


async def taken(runner: PipelineRunner, incidents: Faulty) -> None:
    """Until the write loop has taken the batch and waits for its incident commit."""
    writes = runner._writes
    await asyncio.wait_for(incidents.started.wait(), 5)
    await wait_for(lambda: writes.empty() and writes._unfinished_tasks == 1)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def incident_runner(
    tmp_path, first: Any
) -> AsyncIterator[tuple[JournalQueue, Faulty, GatedStore, PipelineRunner, IncidentService]]:
    """A running runner over a real journal whose pipeline is `first`, then the incident stage on
    SQLite; the incident store's writes wait on its gate (closed), the event store's do not."""
    clock = Clock(T0)
    incidents = Faulty(SqliteIncidentStore(tmp_path / "incidents.db"))
    svc = IncidentService(incidents, parse_settings({}), clock)  # type: ignore[arg-type]
    await svc.open()
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    events = GatedStore()
    runner = PipelineRunner(q, Pipeline([first, IncidentStage(svc)]), events, clock, 10)  # type: ignore[arg-type]
    incidents.gate.clear()
    task = runner.task = asyncio.create_task(runner.run())  # type: ignore[attr-defined]
    try:
        yield q, incidents, events, runner, svc
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await q.close()
        await svc.close()


@contextlib.asynccontextmanager
async def runner_with_incidents(tmp_path):
    """`incident_runner` opening an incident per event, its first batch taken by the write loop."""
    async with incident_runner(tmp_path, Requester()) as running:
        q, incidents, _, runner, _ = running
        ev = event(T0, id="x")
        await q.put(dumps_events([ev]), 1, [ev])
        await taken(runner, incidents)
        yield running


async def test_the_journal_is_acked_only_once_the_incident_commit_is_stored(tmp_path):
    async with runner_with_incidents(tmp_path) as (q, incidents, events, _runner, _svc):
        assert q.depth() == 1 and events.written == []  # neither the events stored nor acked
        incidents.gate.set()
        await wait_for(lambda: q.depth() == 0)
        assert incidents.written == [[1]] and events.written == [["x"]]


async def test_runner_lock_waits_for_the_incident_commit(tmp_path):
    async with runner_with_incidents(tmp_path) as (_q, incidents, _events, runner, _svc):
        entered = asyncio.Event()

        async def snapshot() -> None:
            async with runner.lock:
                assert incidents.written == [[1]]
                entered.set()

        waiter = asyncio.create_task(snapshot())
        await wait_for(lambda: runner._lock.locked())  # the snapshot holds the lock, waits for the writes
        assert not entered.is_set()
        incidents.gate.set()
        await asyncio.wait_for(waiter, 5)


class Seen(Requester):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        self.seen.extend(e.id for e in events)
        return await super().__call__(events, ctx)

    def take_pending(self, ctx: StageContext) -> list[Event]:
        self.seen.append("timer")
        return []


async def test_a_commit_abandoned_at_stop_leaves_its_batch_and_those_after_unacked(tmp_path):
    first = Seen()
    async with incident_runner(tmp_path, first) as (q, incidents, events, runner, svc):
        ev = event(T0, id="x")
        await q.put(dumps_events([ev]), 1, [ev])
        await taken(runner, incidents)
        svc.finish_seconds = 0.0
        await svc.close()  # the service stops under the runner: its commit is abandoned
        await wait_for(lambda: runner.commit_lost)
        ev = event(T0, id="y")
        await q.put(dumps_events([ev]), 1, [ev])
        # The runner stops: level 2 sees nothing more, neither batches nor timers.
        await asyncio.wait_for(runner.task, 5)  # type: ignore[attr-defined]
        await asyncio.wait_for(runner.tick(T0 + 60), 5)
        assert first.seen == ["x"] and runner.processed == 0
        assert q.depth() == 2 and events.written == []  # neither batch stored nor acked


class Timer:
    """Asks for an incident on a level-2 timer, as correlation's flush does (`take_pending`)."""

    name = "timer"

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        return events

    def take_pending(self, ctx: StageContext) -> list[Event]:
        ev = event(T0, id="timer")
        ctx.responses.append(request("open", T0, key="timer"))
        return [ev]


async def test_a_timer_flush_stores_its_events_after_its_incident_commit(tmp_path):
    async with incident_runner(tmp_path, Timer()) as (_q, incidents, events, runner, _svc):
        await asyncio.wait_for(runner.tick(T0 + 1), 5)
        await taken(runner, incidents)
        assert events.written == []  # the flush's events wait for its incident commit
        incidents.gate.set()
        await asyncio.wait_for(runner._writes.join(), 5)
        assert incidents.written == [[1]] and events.written == [["timer"]]
