"""The collectors' way in: serialise a batch once (orjson) and put it on the durable queue."""

from __future__ import annotations

from correlator import metrics
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event, dumps_events
from correlator.queue import IngestQueue


class Ingest:
    def __init__(self, queue: IngestQueue) -> None:
        self._queue = queue

    def retry_after(self) -> float | None:
        """Seconds to wait when the queue is full, else None: check before parsing a large body."""
        return self._queue.retry_after()

    async def emit(self, events: list[Event], source: str) -> None:
        """Durable on return. Raises QueueFull or ShuttingDown, counted as rejections."""
        if not events:
            return
        try:
            await self._queue.put(dumps_events(events), len(events), events)
        except QueueFull:
            metrics.REJECTED_BY(source, "queue_full").inc(len(events))
            raise
        except ShuttingDown:
            metrics.REJECTED_BY(source, "shutting_down").inc(len(events))
            raise
        metrics.RECEIVED_BY(source).inc(len(events))
