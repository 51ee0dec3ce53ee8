"""The bounded ingestion queue between collectors and the pipeline.

`put` returns only once the payload is durable, so a collector may acknowledge its sender then
(HTTP 2xx, MQTT PUBACK, SNMP inform response). The pipeline `get`s batches and `ack`s them after the
event store has them; what was never acked is delivered again after a restart. Payloads are opaque
orjson bytes so that a networked bus (NATS JetStream) can implement the same interface.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Protocol

import orjson

from correlator import door
from correlator.event import Event


@dataclass(frozen=True, slots=True)
class QueueItem:
    seq: int  # position in the queue; acking it acks everything before it too
    payload: bytes  # orjson list of wire-form events
    count: int  # number of events in the payload
    events: list[Event] | None = None  # the same events still in memory (in-process queue only)
    # Delivered before, never acked (read back after a restart): some of its events may be stored.
    redelivered: bool = False

    def decode(self) -> list[Event]:
        """The events; read back from the payload (the journal), each is checked (door.from_wire)
        and the first that is not a valid event raises Refused."""
        if self.events is not None:
            return self.events
        return [door.from_wire(d) for d in orjson.loads(self.payload)]


async def take_batch(
    items: collections.deque[QueueItem], available: asyncio.Event, max_events: int
) -> list[QueueItem]:
    """Wait for at least one item, then take consecutive items holding up to `max_events` events."""
    while not items:
        available.clear()
        await available.wait()
    out = [items.popleft()]
    n = out[0].count
    while items and n + items[0].count <= max_events:
        item = items.popleft()
        out.append(item)
        n += item.count
    return out


class IngestQueue(Protocol):
    async def open(self) -> int:
        """Open (and recover what was accepted and never acked); returns that event count."""
        ...

    async def put(self, payload: bytes, count: int, events: list[Event] | None = None) -> int:
        """Store durably and return the item's seq; raises QueueFull or ShuttingDown.

        An in-process queue may hand `events` to the consumer as they are, sparing a parse; a
        networked one sends only `payload`.
        """
        ...

    async def get(self, max_events: int) -> list[QueueItem]:
        """Wait for at least one item; return consecutive items holding up to `max_events` events."""
        ...

    async def ack(self, seq: int) -> None:
        """Forget every item up to and including `seq`."""
        ...

    def depth(self) -> int:
        """Events accepted (or being made durable) and not yet acked."""
        ...

    def healthy(self) -> bool:
        """False while durable writes fail (disk full, I/O error): /readyz reports it."""
        ...

    def retry_after(self) -> float | None:
        """When full: the seconds a sender should wait (lets collectors refuse before parsing)."""
        ...

    def close_for_input(self) -> None:
        """Refuse further `put`s (shutdown); `get` and `ack` keep working for draining."""
        ...

    async def close(self) -> None: ...
