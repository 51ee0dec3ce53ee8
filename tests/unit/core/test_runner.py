"""The pipeline runner: the pipeline runs the next batch while the store writes the previous one,
writes and acks keep batch order, and `lock` means "between batches, everything stored"."""

from __future__ import annotations

import asyncio
import contextlib

from correlator.clock import Clock
from correlator.event import Event, dumps_events, event_from_dict
from correlator.pipeline import Pipeline, StageContext
from correlator.queue.journal import JournalQueue
from correlator.runner import PipelineRunner


class GatedStore:
    """An event store whose writes wait until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.written: list[list[str]] = []
        self.started = asyncio.Event()

    async def write(self, events: list[Event]) -> int:
        self.started.set()
        await self.gate.wait()
        self.written.append([e.id for e in events])
        return len(events)

    async def fold(self, events: list[Event], folded: list[Event]) -> int:
        return 0

    async def known(self, ids: list[str]) -> set[str]:
        stored = {i for batch in self.written for i in batch}
        return {i for i in ids if i in stored}


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        self.seen.extend(e.host for e in events)
        return events


async def put(q: JournalQueue, host: str) -> None:
    events = [event_from_dict({"id": host, "host": host, "type": "t"}, "webhook:test", 1.0)]
    await q.put(dumps_events(events), 1, events)


@contextlib.asynccontextmanager
async def running(tmp_path, batch_events, store=None):
    """A runner over a real journal, a gated store (closed) and a recording stage."""
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    store, stage = store or GatedStore(), Recorder()
    runner = PipelineRunner(q, Pipeline([stage]), store, Clock(0.0), batch_events)  # type: ignore[arg-type]
    store.gate.clear()
    task = asyncio.create_task(runner.run())
    try:
        yield q, store, stage, runner, task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await q.close()


async def wait_for(cond, timeout=5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


async def test_next_batch_runs_while_the_previous_one_is_written_and_order_holds(tmp_path):
    async with running(tmp_path, batch_events=1) as (q, store, stage, runner, _task):
        await put(q, "a")
        await store.started.wait()  # batch "a" is being written and cannot finish
        await put(q, "b")
        await wait_for(lambda: stage.seen == ["a", "b"])  # the pipeline went on meanwhile
        assert store.written == [] and q.depth() == 2  # nothing acked before it is stored
        store.gate.set()
        await wait_for(lambda: q.depth() == 0)
        assert store.written == [["a"], ["b"]]
        assert runner.processed == 2


async def test_lock_waits_until_every_batch_that_ran_is_stored(tmp_path):
    async with running(tmp_path, batch_events=10) as (q, store, stage, runner, _task):
        await put(q, "a")
        await wait_for(lambda: stage.seen == ["a"])
        entered = asyncio.Event()

        async def snapshot() -> None:
            async with runner.lock:
                assert store.written == [["a"]]  # level-2 state and the store agree
                entered.set()

        waiter = asyncio.create_task(snapshot())
        for _ in range(20):  # let the snapshot task run as far as it can: the closed gate holds it
            await asyncio.sleep(0)
        assert not entered.is_set()
        store.gate.set()
        await asyncio.wait_for(waiter, 5)
        async with runner.lock:  # reusable, and free again
            pass


async def test_after_a_crash_what_the_store_already_has_is_acked_but_not_processed_again(tmp_path):
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    for host in ("a", "b", "c"):
        await put(q, host)
    await q.close()  # "crash": stored a and b, never acked anything
    store = GatedStore()
    store.written = [["a"], ["b"]]
    async with running(tmp_path, batch_events=10, store=store) as (q, store, stage, runner, _task):
        store.gate.set()
        await wait_for(lambda: q.depth() == 0)
        assert stage.seen == ["c"]
        assert store.written[-1] == ["c"]
        assert runner.processed == 3


async def test_stopping_stores_what_went_through_the_pipeline_and_lock_does_not_hang(tmp_path):
    async with running(tmp_path, batch_events=1) as (q, store, stage, runner, run_task):
        await put(q, "a")
        await store.started.wait()
        await put(q, "b")
        await wait_for(lambda: stage.seen == ["a", "b"])  # b waits behind a's write
        run_task.cancel()  # the daemon's shutdown
        await asyncio.sleep(0)
        store.gate.set()
        await asyncio.gather(run_task, return_exceptions=True)
        assert store.written == [["a"], ["b"]] and q.depth() == 0
        async with runner.lock:  # a shutdown snapshot gets in
            pass


async def test_stopping_with_a_failing_store_gives_up_after_finish_seconds(tmp_path):
    async with running(tmp_path, batch_events=1) as (q, store, stage, runner, run_task):
        runner.finish_seconds = 0.05
        await put(q, "a")
        await store.started.wait()
        await put(q, "b")
        await wait_for(lambda: stage.seen == ["a", "b"])
        run_task.cancel()
        await asyncio.gather(run_task, return_exceptions=True)
        assert store.written == [] and q.depth() == 2  # nothing acked: both come back at the next start
        async with asyncio.timeout(1):
            async with runner.lock:
                pass


class FoldingStore:
    """A store that records its calls; `write_and_fold` fails with `refuse` while it is set."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, list[str], list[tuple[str, int]], list[str]]] = []

    async def write(self, events: list[Event]) -> int:
        self.calls.append(("write", [e.id for e in events], [], []))
        return len(events)

    async def fold(self, events: list[Event], folded: list[Event]) -> int:
        self.calls.append(("fold", [], [(e.id, e.count) for e in events], [e.id for e in folded]))
        return len(events)

    async def write_and_fold(self, events: list[Event], updates: list[Event], folded: list[Event]) -> int:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(
            (
                "write_and_fold",
                [e.id for e in events],
                [(e.id, e.count) for e in updates],
                [e.id for e in folded],
            )
        )
        return len(events)

    async def known(self, ids: list[str]) -> set[str]:
        return set()


class Folder:
    """A stage that folds each event into the first one it saw, as de-duplication does."""

    name = "folder"

    def __init__(self) -> None:
        self.first: Event | None = None

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        kept = []
        for ev in events:
            if self.first is None:
                self.first = ev
                kept.append(ev)
            else:
                self.first.count += 1
                ctx.updates.append(self.first)
                ctx.folded.append(ev)
        return kept


async def run_folding(tmp_path, store: FoldingStore, hosts: list[str]) -> PipelineRunner:
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    runner = PipelineRunner(q, Pipeline([Folder()]), store, Clock(0.0), batch_events=1)  # type: ignore[arg-type]
    fenced = asyncio.Event()

    async def on_fenced() -> None:
        fenced.set()

    runner.on_fenced = on_fenced
    task = asyncio.create_task(runner.run())
    try:
        for host in hosts:
            await put(q, host)
        await wait_for(lambda: q.depth() == 0 or fenced.is_set())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await q.close()
    return runner


async def test_a_batch_with_folds_is_written_and_folded_in_one_call(tmp_path):
    store = FoldingStore()
    runner = await run_folding(tmp_path, store, ["a", "b", "c"])
    assert store.calls == [
        ("write", ["a"], [], []),  # nothing to fold: the write alone, as before
        ("write_and_fold", [], [("a", 2)], ["b"]),  # the repeats' ids go with their fold
        ("write_and_fold", [], [("a", 3)], ["c"]),
    ]
    assert runner.processed == 3


async def test_a_failed_write_and_fold_is_done_again_as_two_calls(tmp_path):
    store = FoldingStore(refuse=ValueError("the data"))
    runner = await run_folding(tmp_path, store, ["a", "b"])
    assert store.calls == [("write", ["a"], [], []), ("write", [], [], []), ("fold", [], [("a", 2)], ["b"])]
    assert runner.processed == 2


async def test_a_fenced_write_and_fold_is_not_done_again_apart(tmp_path):
    refusal = RuntimeError("fenced")
    refusal.sqlstate = "CRF01"  # type: ignore[attr-defined]
    store = FoldingStore(refuse=refusal)
    runner = await run_folding(tmp_path, store, ["a", "b"])
    assert store.calls == [("write", ["a"], [], [])]  # the partitions' new owner stores "b"
    assert runner.processed == 1
