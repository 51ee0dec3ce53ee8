"""The consumer side of the queue: take batches, run the pipeline, store, then ack.

Ack comes after the store commit, so a crash in between delivers the batch again; the store
ignores ids it already has, which makes the outcome exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from correlator import metrics
from correlator.clock import Clock
from correlator.event import Event
from correlator.pipeline import Pipeline, StageContext
from correlator.queue import IngestQueue, QueueItem
from correlator.store import EventStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Write:
    out: list[Event]
    updates: list[Event]
    events: list[Event]  # what came from the queue: counted and timed once stored
    ack: int | None  # queue position to ack once stored; None for a timer flush


@dataclass(slots=True)
class _Settled:
    lock: asyncio.Lock
    writes: asyncio.Queue[_Write]

    async def __aenter__(self) -> None:
        await self.lock.acquire()
        try:
            await self.writes.join()
        except BaseException:
            self.lock.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()


class PipelineRunner:
    """Two steps that overlap: the pipeline runs batch N+1 on the event loop while the store thread
    writes batch N. Writes and acks stay in batch order, one store transaction at a time."""

    def __init__(
        self, queue: IngestQueue, pipeline: Pipeline, store: EventStore, clock: Clock, batch_events: int
    ) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._store = store
        self._clock = clock
        self._batch_events = batch_events
        self.processed = 0
        self._lock = asyncio.Lock()  # batches and timer flushes take turns through the pipeline
        # One batch waits here while the previous one is written: enough to keep both steps busy.
        self._writes: asyncio.Queue[_Write] = asyncio.Queue(maxsize=1)
        self._writer: asyncio.Task[None] | None = None
        self.finish_seconds = 5.0

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def lock(self) -> _Settled:
        """Hold this (`async with`) to see level-2 state between batches, matching what the store
        holds: no batch runs through the pipeline and every batch that ran is stored."""
        return _Settled(self._lock, self._writes)

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")
        try:
            while True:
                items = await self._queue.get(self._batch_events)
                await self._process(items)
        finally:
            await self._finish_writes()

    async def _finish_writes(self) -> None:
        """On stop: store what already went through the pipeline, so the level-2 snapshot taken at
        shutdown matches the store. Bounded, for a store that keeps failing; what is left unwritten
        is not acked and comes back at the next start."""
        assert self._writer is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writes.join(), self.finish_seconds)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        while not self._writes.empty():
            self._writes.get_nowait()
            self._writes.task_done()

    async def tick(self, now: float) -> None:
        """Advance the clock to `now` and store what level-2 timers made (no event needs to arrive)."""
        async with self._lock:
            self._clock.advance_to(now)
            ctx = StageContext(self._clock, live=True)
            out = await self._pipeline.flush(ctx)
            if out or ctx.updates:
                await self._writes.put(_Write(out, ctx.updates, [], None))

    async def _process(self, items: list[QueueItem]) -> None:
        events: list[Event] = []
        for item in items:
            events.extend(item.decode())
        fresh = events
        if any(item.redelivered for item in items):
            fresh = await self._not_yet_stored(events)
        ctx = StageContext(self._clock, live=True, seq=items[-1].seq)
        async with self._lock:
            out = await self._pipeline.run(fresh, ctx)
            await self._writes.put(_Write(out, ctx.updates, events, items[-1].seq))

    async def _not_yet_stored(self, events: list[Event]) -> list[Event]:
        """A batch read back after a crash: what the store already has went through the whole
        pipeline before the crash (incidents, availability, ...) and level 2 was fed it again at
        start (correlation/lifecycle.py), so running it again would count it twice."""
        await self._writes.join()  # the store must hold everything written before we ask it
        known = await self._store.known([e.id for e in events])
        if known:
            log.info("journal: %d redelivered events were already stored; not processed again", len(known))
        return [e for e in events if e.id not in known]

    async def _write_loop(self) -> None:
        while True:
            w = await self._writes.get()
            try:
                await self._write(w.out, w.updates)
                if w.ack is not None:
                    await self._queue.ack(w.ack)
                    _observe_latency(w.events, time.time())
                    metrics.EVENTS_PROCESSED.inc(len(w.events))
                    self.processed += len(w.events)
            finally:
                self._writes.task_done()

    async def _write(self, out: list[Event], updates: list[Event]) -> None:
        delay = 0.1
        while True:
            try:
                await self._store.write(out)
                if updates:
                    await self._store.fold(updates)
                break
            except Exception as e:
                # Never ack what is not stored: retry until the store takes it (disk full, locked, ...).
                log.error("event store write failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _observe_latency(events: list[Event], now: float) -> None:
    """received->stored for each event; the events of one request share their received time, so the
    histogram is updated once per request rather than once per event."""
    run_start, n = 0.0, 0
    for ev in events:
        if ev.received != run_start:
            if n:
                metrics.observe_many(metrics.PIPELINE_LATENCY_SECONDS, now - run_start, n)
            run_start, n = ev.received, 0
        n += 1
    if n:
        metrics.observe_many(metrics.PIPELINE_LATENCY_SECONDS, now - run_start, n)
