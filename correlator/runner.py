"""The consumer side of the queue: take batches, run the pipeline, store, then ack.

Ack comes after the store commit, so a crash in between delivers the batch again; the store
ignores ids it already has, which makes the outcome exactly-once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from correlator import metrics
from correlator.clock import Clock
from correlator.event import Event
from correlator.pipeline import Pipeline, StageContext
from correlator.queue import IngestQueue, QueueItem
from correlator.store import EventStore

log = logging.getLogger(__name__)


class PipelineRunner:
    def __init__(
        self, queue: IngestQueue, pipeline: Pipeline, store: EventStore, clock: Clock, batch_events: int
    ) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._store = store
        self._clock = clock
        self._batch_events = batch_events
        self.processed = 0
        self._lock = asyncio.Lock()  # batches and timer flushes take turns: one store transaction at a time

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a batch or a timer flush runs; hold it to see level-2 state between batches."""
        return self._lock

    async def run(self) -> None:
        while True:
            items = await self._queue.get(self._batch_events)
            await self._process(items)

    async def tick(self, now: float) -> None:
        """Advance the clock to `now` and store what level-2 timers made (no event needs to arrive)."""
        async with self._lock:
            self._clock.advance_to(now)
            ctx = StageContext(self._clock, live=True)
            out = await self._pipeline.flush(ctx)
            if out or ctx.updates:
                await self._write(out, ctx.updates)

    async def _process(self, items: list[QueueItem]) -> None:
        events: list[Event] = []
        for item in items:
            events.extend(item.decode())
        ctx = StageContext(self._clock, live=True, seq=items[-1].seq)
        async with self._lock:
            out = await self._pipeline.run(events, ctx)
            await self._write(out, ctx.updates)
            await self._queue.ack(items[-1].seq)
        now = time.time()
        for ev in events:
            metrics.PIPELINE_LATENCY_SECONDS.observe(now - ev.received)
        metrics.EVENTS_PROCESSED.inc(len(events))
        self.processed += len(events)

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
