"""The ingest side of the queue interface on JetStream: `put` returns once every partition's part of
the batch is in the stream (acked by its leader after replication), so the collector may acknowledge
its sender then. Nothing is consumed here: workers `get` and `ack` (cluster/consume.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from collections.abc import Callable

from correlator import metrics
from correlator.cluster.bus import Bus
from correlator.cluster.partition import partition_of
from correlator.errors import QueueFull, ShuttingDown, StorageUnavailable
from correlator.event import Event, dumps_events, loads_events
from correlator.queue import QueueItem

log = logging.getLogger(__name__)

KeyOf = Callable[[Event], str]
READY_AFTER = 10.0  # seconds without a failed publish before /readyz is green again
COUNT = "Correlator-Count"  # header: events in the message, so a worker bounds its queue without parsing
ENCODING = "Correlator-Encoding"  # header: "deflate" when the payload is compressed (zlib)
COMPRESS_FROM = 512  # bytes: a smaller payload is sent as it is


class BusQueue:
    """Bounded by the events in flight (published, ack not yet back): past `max_events` a put gets
    QueueFull (503 + Retry-After), and while JetStream does not ack (no quorum, no leader, cluster
    unreachable) StorageUnavailable: never an acknowledgement without the stream's ack."""

    # `put` may be given the events with an empty payload: it serialises each partition's part
    # itself, so a batch is serialised once on its way to the stream, not once whole and again
    # per partition.
    takes_events = True

    def __init__(
        self, bus: Bus, key_of: KeyOf, max_events: int, retry_after: float, gauges: bool = True
    ) -> None:
        self._bus = bus
        self._key_of = key_of
        self._partitions = bus.settings.partitions
        self._max_events = max_events
        self._retry_after = retry_after
        self._inflight = 0
        self._puts = 0  # puts waiting for JetStream's acks
        self._idle = asyncio.Event()  # set while none is
        self._idle.set()
        self.close_seconds = 5.0  # the longest `close` waits for them
        self._accepting = True
        self.failing: str | None = None  # the last publish error until one succeeds
        self._failed_at = -READY_AFTER
        self.published = 0
        # A worker's outbox (cluster/consume.py) leaves the queue gauges to the partitions it consumes.
        self._gauges = gauges
        if gauges:
            metrics.QUEUE_CAPACITY.set(max_events)

    async def open(self) -> int:
        return 0

    async def put(self, payload: bytes, count: int, events: list[Event] | None = None) -> int:
        if not self._accepting:
            raise ShuttingDown("the daemon is shutting down")
        if self._inflight + count > self._max_events and self._inflight > 0:
            raise QueueFull(self._inflight, self._max_events, self._retry_after)
        if events is None:
            events = loads_events(payload)
        parts: dict[int, list[Event]] = {}
        for ev in events:
            parts.setdefault(partition_of(self._key_of(ev), self._partitions), []).append(ev)
        # Each part serialised once, before anything is published: an event orjson refuses raises
        # its JSONEncodeError here and nothing of the batch is in the stream (correlator/ingest.py).
        if len(parts) == 1 and payload:
            bodies = [(p, payload, len(evs)) for p, evs in parts.items()]
        else:
            bodies = [(p, dumps_events(evs), len(evs)) for p, evs in parts.items()]
        self._inflight += count
        self._puts += 1
        self._idle.clear()
        self._show_depth()
        try:
            if len(bodies) == 1:
                seq = await self._publish(*bodies[0])
            else:
                seq = max(await asyncio.gather(*(self._publish(*b) for b in bodies)))
        finally:
            self._inflight -= count
            self._puts -= 1
            if not self._puts:
                self._idle.set()
            self._show_depth()
        self.failing = None
        self.published += count
        return seq

    def _show_depth(self) -> None:
        if self._gauges:
            metrics.QUEUE_DEPTH.set(self._inflight)

    async def _publish(self, partition: int, payload: bytes, count: int) -> int:
        # The same batch published again (the sender retried after a lost ack) is kept once by the
        # stream's duplicate window; the event store would ignore the ids anyway.
        msg_id = hashlib.blake2b(payload, digest_size=16).hexdigest()
        headers = {"Nats-Msg-Id": msg_id, COUNT: str(count)}
        if len(payload) >= COMPRESS_FROM:
            payload = zlib.compress(payload, 1)
            headers[ENCODING] = "deflate"
        try:
            ack = await self._bus.js.publish(self._bus.subject(partition), payload, headers=headers)
        except Exception as e:  # timeout, no responders, connection lost: the sender keeps the event
            self.failing = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self._failed_at = time.monotonic()
            log.warning("JetStream publish to partition %d failed: %s", partition, self.failing)
            raise StorageUnavailable("JetStream did not acknowledge the publish", self._retry_after) from e
        return int(ack.seq)

    async def get(self, max_events: int) -> list[QueueItem]:
        raise RuntimeError("an ingest process does not consume events: run a worker (--role worker)")

    async def ack(self, seq: int) -> None:
        raise RuntimeError("an ingest process does not consume events")

    def depth(self) -> int:
        return self._inflight

    def healthy(self) -> bool:
        """/readyz: connected, and no publish failed lately. Not "until a publish succeeds": a load
        balancer that takes this process out of rotation would never let one through again."""
        recent = self.failing is not None and time.monotonic() - self._failed_at < READY_AFTER
        return self._bus.nc.is_connected and not recent

    def retry_after(self) -> float | None:
        return self._retry_after if self._inflight >= self._max_events else None

    def close_for_input(self) -> None:
        self._accepting = False

    async def close(self) -> None:
        """Take no more, and wait (bounded) for the acks of the puts in flight: the bus is closed
        next, and an event published but not acked (a worker's change.started, its change saved)
        would then be lost although the stream may hold it."""
        self._accepting = False
        if self._puts:
            try:
                await asyncio.wait_for(self._idle.wait(), self.close_seconds)
            except TimeoutError:
                log.error("JetStream did not acknowledge %d events before the stop", self._inflight)
