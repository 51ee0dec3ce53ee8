"""The collectors' way in: serialise a batch once (orjson, here or in the queue) and put it on the
durable queue.

An event that cannot be serialised (orjson refuses it) is set aside in the dead-letter table
instead of failing its whole batch: the others are queued as usual (docs/architecture.md
"Dead-letter path").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from correlator import deadletter, metrics
from correlator.deadletter import DeadLetterStore
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event, dumps_events, loads_events
from correlator.queue import IngestQueue

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, queue: IngestQueue, dead_letters: DeadLetterStore | None = None) -> None:
        self._queue = queue
        self._dead_letters = dead_letters
        # A queue that serialises what it sends (cluster/publish.py: one part per partition) takes
        # the events alone; serialising them here too would be done twice.
        self._queue_serialises = bool(getattr(queue, "takes_events", False))
        self._accepting = True

    def close_for_input(self) -> None:
        """Shutdown: refuse further events, and say so in `full`, so that a request that would save
        something and then emit its event (a change's transition) is refused before it saves."""
        self._accepting = False
        self._queue.close_for_input()

    def retry_after(self) -> float | None:
        """Seconds to wait when the queue is full, else None: check before parsing a large body."""
        return self._queue.retry_after()

    def full(self) -> QueueFull | ShuttingDown | None:
        """The push-back a put would meet now (the queue is full, the daemon is stopping), else None:
        refuse before working."""
        if not self._accepting:
            return ShuttingDown("the daemon is shutting down")
        wait = self._queue.retry_after()
        return None if wait is None else QueueFull(self._queue.depth(), self._queue.depth(), wait)

    async def emit(self, events: list[Event], source: str) -> None:
        """Durable on return. Raises QueueFull (StorageUnavailable) or ShuttingDown, counted as rejections."""
        if not events:
            return
        payload = b""
        if not self._queue_serialises:
            events, payload = await serialise(events, self._set_aside_unserialisable)
            if not events:
                return
        try:
            try:
                await self._queue.put(payload, len(events), events)
            except orjson.JSONEncodeError:  # the queue's serialisation refused an event: nothing was put
                events, payload = await serialise(events, self._set_aside_unserialisable)
                if not events:
                    return
                await self._queue.put(payload, len(events), events)
        except QueueFull as e:
            metrics.REJECTED_BY(source, e.reason).inc(len(events))
            raise
        except ShuttingDown:
            metrics.REJECTED_BY(source, "shutting_down").inc(len(events))
            raise
        metrics.RECEIVED_BY(source).inc(len(events))

    async def put_serialised(self, payload: bytes, count: int, source: str) -> None:
        """A batch an HTTP worker has checked and serialised (correlator/workerlink.py): durable on
        return, counted like emit. Read back here as trusted (`Event.from_wire`, not the door's
        `from_wire`): the worker is a process of our own that ran the door on each event, and the
        journal's replay after a restart still checks (docs/architecture.md "HTTP workers").
        Raises ValueError when the payload is not `count` events in the wire form."""
        refusal = self.full()
        if refusal is not None:  # refused before parsing, which would only take the pipeline's CPU
            metrics.REJECTED_BY(source, QueueFull.reason).inc(count)
            raise refusal
        try:
            events = loads_events(payload)
        except (KeyError, TypeError) as e:
            raise ValueError(f"not events in the wire form: {e!r}") from None
        if len(events) != count:
            raise ValueError(f"{len(events)} events where the frame says {count}")
        try:
            await self._queue.put(payload, count, events)
        except QueueFull as e:
            metrics.REJECTED_BY(source, e.reason).inc(count)
            raise
        except ShuttingDown:
            metrics.REJECTED_BY(source, "shutting_down").inc(count)
            raise
        metrics.RECEIVED_BY(source).inc(count)

    async def dead_letter(self, events: list[Event], reason: str, error: BaseException | str) -> None:
        """Set events aside durably (raises if the store cannot take them: then do not acknowledge)."""
        await self._set_aside([deadletter.of_event(e, reason, error) for e in events])

    async def _set_aside_unserialisable(self, bad: list[tuple[Event, Exception]]) -> None:
        """Raises if the dead letters cannot be written (then nothing is acknowledged). One write
        for the whole batch: a sender that puts a lone surrogate in every message costs one store
        transaction per batch, not one per event."""
        for ev, error in bad:
            log.error("event %s cannot be serialised; dead-lettered: %s", deadletter.text(ev.id, 200), error)
        await self._set_aside([deadletter.of_event(ev, deadletter.UNSERIALISABLE, e) for ev, e in bad])

    async def _set_aside(self, items: list[deadletter.DeadLetter]) -> None:
        if self._dead_letters is None:
            raise RuntimeError("no dead-letter store")
        await deadletter.set_aside(self._dead_letters, items)


async def serialise(
    events: list[Event], set_aside: Callable[[list[tuple[Event, Exception]]], Awaitable[None]]
) -> tuple[list[Event], bytes]:
    """The events the journal can take and their payload. When orjson refuses the batch (nesting
    past its limit, lone surrogates), each event is serialised alone and those it refuses go to
    `set_aside` (the dead letters), so they do not fail the rest."""
    try:
        return events, dumps_events(events)
    except (TypeError, ValueError):
        pass
    good: list[Event] = []
    bad: list[tuple[Event, Exception]] = []
    for ev in events:
        try:
            dumps_events([ev])
            good.append(ev)
        except (TypeError, ValueError) as e:
            bad.append((ev, e))
    await set_aside(bad)
    return good, dumps_events(good) if good else b""
