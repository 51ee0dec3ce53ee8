"""The consumer side of the queue: take batches, run the pipeline, store, then ack.

Ack comes after the store commit, so a crash in between delivers the batch again; the store
ignores ids it already has, which makes the outcome exactly-once. A batch the store keeps refusing
for a reason of its data is bisected: the good events are stored and the one it refuses is set
aside in the dead-letter table (correlator/deadletter.py), so it never holds up those behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from correlator import deadletter, door, metrics
from correlator.clock import Clock
from correlator.deadletter import DeadLetter
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.pipeline import Pipeline, StageContext
from correlator.progress import Progress
from correlator.queue import IngestQueue, QueueItem
from correlator.store import EventStore
from correlator.store.faults import fenced, transient

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)  # a batch full of poison logs a few lines, then a count


@dataclass(slots=True)
class _Write:
    out: list[Event]
    updates: list[Event]
    folded: list[Event]  # the repeats folded into `updates`: the store keeps their ids
    events: list[Event]  # what came from the queue: counted and timed once stored
    ack: int | None  # queue position to ack once stored; None for a timer flush
    dead: list[DeadLetter]  # journal items that could not be decoded: set aside before the ack
    pending: asyncio.Future[Any] | None  # the incident commit the batch started: awaited first


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
    writes batch N (and the incident store commits batch N's incident changes). Writes and acks
    stay in batch order, one store transaction at a time per store."""

    def __init__(
        self,
        queue: IngestQueue,
        pipeline: Pipeline,
        store: EventStore,
        clock: Clock,
        batch_events: int,
        stall_after: float = 60.0,
    ) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._store = store
        self._clock = clock
        self._batch_events = batch_events
        self.progress = Progress(queue.depth, stall_after)
        self.write_tries = 3  # tries of a whole batch before it is bisected (a store error the data caused)
        self.processed = 0
        self._lock = asyncio.Lock()  # batches and timer flushes take turns through the pipeline
        # One batch waits here while the previous one is written: enough to keep both steps busy.
        self._writes: asyncio.Queue[_Write] = asyncio.Queue(maxsize=1)
        self._writer: asyncio.Task[None] | None = None
        self.finish_seconds = 5.0
        # Cluster: awaited when the store refuses a batch because this worker was fenced out
        # (store/faults.py), before the next write; the batch is abandoned unacknowledged.
        self.on_fenced: Callable[[], Awaitable[None]] | None = None
        # An incident commit a batch waited for was abandoned (the incident service stopped under
        # it): from then on nothing is stored or acked, as acks are cumulative (see _write_loop),
        # and `run` stops taking batches (never reset: the journal delivers them at the next start).
        self.commit_lost = False

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
            while not self.commit_lost:
                items = await self._queue.get(self._batch_events)
                if self.commit_lost:  # taken, never acked: delivered again at the next start
                    break
                self.progress.moved()
                await self._process(items)
            # Level 2 must not move on past what the store holds: the journal fills and /readyz
            # reports the pipeline stalled until a restart.
            log.error("pipeline stopped: an incident commit was lost; restart to process the journal again")
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
            if self.commit_lost:  # `run` has stopped: nothing would store what timers make
                return
            ctx = StageContext(self._clock, live=True)
            out = await self._pipeline.flush(ctx)
            if out or ctx.updates or ctx.pending is not None:
                await self._writes.put(_Write(out, ctx.updates, ctx.folded, [], None, [], ctx.pending))

    async def _process(self, items: list[QueueItem]) -> None:
        events, dead = decode_items(items)
        fresh = events
        if any(item.redelivered for item in items):
            fresh = await self._not_yet_stored(events)
        ctx = StageContext(self._clock, live=True, seq=items[-1].seq)
        async with self._lock:
            out = await self._pipeline.run(fresh, ctx)
            await self._writes.put(
                _Write(out, ctx.updates, ctx.folded, events, items[-1].seq, dead, ctx.pending)
            )

    async def _not_yet_stored(self, events: list[Event]) -> list[Event]:
        """A batch read back after a crash: what the store already has went through the whole
        pipeline before the crash (incidents, availability, ...) and level 2 was fed it again at
        start (correlation/lifecycle.py), so running it again would count it twice. So did the
        repeats folded into a stored event, whose ids the store kept with the fold: de-duplication's
        windows start empty, and would store them again."""
        await self._writes.join()  # the store must hold everything written before we ask it
        known = await self._known([e.id for e in events])
        if known:
            log.info("journal: %d redelivered events were already stored; not processed again", len(known))
        return [e for e in events if e.id not in known]

    async def _known(self, ids: list[str]) -> set[str]:
        """store.known, retried while the store fails for its own reason. An id the store cannot
        even be asked about (a NUL for PostgreSQL, a lone surrogate) was never stored there: it is
        left out of the question rather than stopping the pipeline on it."""
        delay = 0.1
        refused = 0
        while True:
            try:
                return await self._store.known(ids)
            except Exception as e:
                if not transient(e):
                    clean = [i for i in ids if deadletter.text(i, len(i)) == i]  # no NUL, no surrogate
                    if len(clean) < len(ids):
                        ids = clean
                        continue
                    refused += 1
                    if refused >= self.write_tries:  # processed again; the store still keeps an id once
                        log.error("event store lookup keeps failing; batch processed as new: %s", e)
                        return set()
                log.error("event store lookup failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_loop(self) -> None:
        while True:
            w = await self._writes.get()
            try:
                if w.pending is not None and not self.commit_lost:
                    # Before the events: once they are stored a redelivered batch skips them
                    # (_not_yet_stored), so its incident changes must be stored already.
                    await self._commit_of(w.pending)
                if self.commit_lost:
                    # Neither stored nor acked: the batch comes back at the next start, and so must
                    # every later one, since acking one acks those before it.
                    _limited.error(
                        "commit-lost",
                        "a batch of %d events was not stored: an incident commit before it was"
                        " abandoned; not acknowledged, it is processed again at the next start",
                        len(w.events),
                    )
                    continue
                await self._write(w.out, w.updates, w.folded)
                if w.dead:
                    await self._set_aside(w.dead)
                if w.ack is not None:
                    await self._queue.ack(w.ack)
                    self.progress.moved()
                    _observe_latency(w.events, time.time())
                    metrics.EVENTS_PROCESSED.inc(len(w.events))
                    self.processed += len(w.events)
            except Exception as e:
                if not fenced(e):
                    raise
                log.error("event store refused a batch of %d events: %s; not acknowledged", len(w.out), e)
                if self.on_fenced is not None:
                    await self.on_fenced()
            finally:
                self._writes.task_done()

    async def _commit_of(self, pending: asyncio.Future[Any]) -> None:
        """Wait for a batch's incident commit (shielded: never cancel it). Cancelled (the service
        stopped under it) or failed, it is a lost commit: `commit_lost`. Refused for good (a False
        result) it is not: the incident service dropped those changes and the batch goes on."""
        try:
            await asyncio.shield(pending)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not pending.cancelled() or (task is not None and task.cancelling()):
                raise  # this loop is being stopped
            log.error("an incident commit was abandoned; its batch is not acknowledged")
        except Exception:
            log.exception("an incident commit failed; its batch is not acknowledged")
        self.commit_lost = True

    async def _write(self, out: list[Event], updates: list[Event], folded: list[Event]) -> None:
        if updates or folded:
            # One trip for both: the write loop resumes from each await only when the pipeline's
            # current batch yields. Failed, it is all undone, and the two calls apart take over
            # with their retries, bisection and dead letters.
            try:
                await self._store.write_and_fold(out, updates, folded)
                return
            except Exception as e:
                if fenced(e):
                    raise
                _limited.warning(
                    "write-and-fold",
                    "storing a batch with its folds in one call failed (%r); writing and folding apart",
                    e,
                )
        await self._durably(self._store.write, out)
        if updates or folded:
            await self._durably(lambda part: self._store.fold(part, folded), updates)

    async def _durably(self, op: Callable[[list[Event]], Awaitable[int]], events: list[Event]) -> None:
        """Never ack what is not stored: retry until the store takes the batch (disk full, locked,
        ...). After `write_tries` failures the data may be at fault: bisect, dead-lettering the
        events the store refuses alone, unless the error is the store's own (store/faults.py)."""
        delay = 0.1
        tries = 0
        while True:
            try:
                await op(events)
                return
            except Exception as e:
                if fenced(e):
                    raise
                tries += 1
                if tries >= self.write_tries and not transient(e) and await self._bisect(op, events, e):
                    return
                log.error("event store write failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _bisect(
        self, op: Callable[[list[Event]], Awaitable[int]], events: list[Event], error: Exception
    ) -> bool:
        """Store the halves apart, down to single events; True once every event is stored or set
        aside. False when the store itself fails meanwhile: the caller retries the whole batch
        (writes are idempotent, so the halves already stored are not stored twice)."""
        if len(events) == 1:
            ev = events[0]
            try:
                await deadletter.set_aside(
                    self._store, [deadletter.of_event(ev, deadletter.STORE_REJECTED, error)]
                )
            except Exception as e:
                log.error(
                    "cannot set aside event %s in the dead-letter table: %s", deadletter.text(ev.id, 200), e
                )
                return False
            _limited.warning(
                "dead-letter",
                "event store refused event %s (source %s); dead-lettered: %s",
                deadletter.text(ev.id, 200),
                deadletter.text(ev.source, 200),
                error,
            )
            return True
        mid = len(events) // 2
        for part in (events[:mid], events[mid:]):
            try:
                await op(part)
            except Exception as e:
                if transient(e) or not await self._bisect(op, part, e):
                    return False
        return True

    async def _set_aside(self, dead: list[DeadLetter]) -> None:
        delay = 0.1
        while True:
            try:
                await deadletter.set_aside(self._store, dead)
                return
            except Exception as e:
                if fenced(e):
                    raise
                log.error("dead-letter write failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def decode_items(items: list[QueueItem]) -> tuple[list[Event], list[DeadLetter]]:
    """The events of queue items, and the dead letters of what in them cannot be read."""
    events: list[Event] = []
    dead: list[DeadLetter] = []
    for item in items:
        try:
            events.extend(item.decode())
        except Exception as e:
            good, bad = _decode_leniently(item, e)
            events.extend(good)
            dead.extend(bad)
    return events, dead


def _decode_leniently(item: QueueItem, error: Exception) -> tuple[list[Event], list[DeadLetter]]:
    """A journal item orjson cannot read (written by an older or broken writer), or holding an
    event that is not valid (`door.from_wire`: a wrong type, text or time that would break a stage,
    the API or /metrics): the standard library takes what orjson refuses (lone surrogates), so the
    item is split into its events and only those that are not valid events are set aside here; the
    store then takes or refuses the rest one by one. An item that is not even JSON is set aside
    whole. Never retried."""
    try:
        docs = json.loads(item.payload)
        if not isinstance(docs, list):
            raise TypeError(f"expected a list of events, got {type(docs).__name__}")
    except Exception:
        log.error("journal: item %d cannot be decoded; dead-lettered: %s", item.seq, error)
        return [], [deadletter.of_payload(item.payload, deadletter.UNDECODABLE, error)]
    events: list[Event] = []
    dead: list[DeadLetter] = []
    for doc in docs:
        try:
            events.append(door.from_wire(doc))
        except Exception as e:
            _limited.warning(
                "undecodable", "journal: an event of item %d is not valid; dead-lettered: %r", item.seq, e
            )
            raw = json.dumps(doc, ensure_ascii=True, default=str).encode()
            dead.append(deadletter.of_payload(raw, deadletter.UNDECODABLE, repr(e), doc=doc))
    return events, dead


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
