"""The worker side of the queue interface on JetStream: the partitions this worker owns, merged into
one sequence of items for the pipeline runner (correlator/runner.py), which acks after the store.

Per partition, the stored position (`pos.<p>` in the state bucket: the last stream sequence whose
events are processed and stored) is where a new owner starts. Advancing it is revision-checked: the
new owner rewrites it when it takes the partition, so an old owner that wakes up (paused, partitioned
away) finds its revision stale at its next ack and stops instead of moving the position back or on.

A worker runs no collector, but it makes events of its own (a change's `change.started` when the
calendar opens its window on the timer leader, a dead letter retried through its API): `put` hands
them to an outbox, the ingest side's publisher on the same bus, so they reach the stream like any
collector's, in the partition of their key, and are processed by whichever worker owns it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from prometheus_client.metrics import Counter, Gauge

from correlator import metrics
from correlator.cluster.bus import Bus
from correlator.cluster.publish import COUNT, ENCODING, BusQueue
from correlator.event import Event
from correlator.queue import QueueItem, take_batch

log = logging.getLogger(__name__)

OWNED = Gauge("correlator_cluster_partitions_owned", "Stream partitions this worker consumes now")
TAKEN = Counter("correlator_cluster_partitions_taken_total", "Partitions this worker started consuming")
FENCED = Counter(
    "correlator_cluster_fenced_total",
    "Position or level-2 snapshot updates refused because another worker took the partition",
)

FETCH = 256  # messages per pull request
ACK_WAIT = 300.0  # a batch is acked long before; redelivery only ever follows a lost worker


@dataclass
class _Partition:
    number: int
    epoch: int  # which taking of the partition: items of an earlier one are never acked
    position: int  # last stream sequence stored (the restart point of the next owner)
    revision: int  # of `pos.<p>`: our fence
    replay_upto: int  # stream sequences up to here may have been processed by the previous owner
    done: int = 0  # last stream sequence processed and stored here (level-2 snapshots cover it)
    sub: JetStreamContext.PullSubscription | None = None
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Pending:
    seq: int
    partition: int
    epoch: int
    msg: Msg
    stream_seq: int
    count: int


@dataclass
class _Stats:
    taken: int = 0
    lost: int = 0
    fenced: int = 0


class PartitionQueue:
    # `put` goes to the outbox, which serialises each partition's part itself (correlator/ingest.py).
    takes_events = True

    def __init__(self, bus: Bus, max_events: int, outbox: BusQueue) -> None:
        self._bus = bus
        self._outbox = outbox
        self._max_events = max_events
        self._parts: dict[int, _Partition] = {}
        self._epochs = 0
        self._items: collections.deque[QueueItem] = collections.deque()
        self._pending: collections.deque[_Pending] = collections.deque()  # taken or waiting, not acked
        self._available = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._depth = 0
        self._next_seq = 1
        self.failing: str | None = None
        self._closing = False
        self.stats = _Stats()
        self.on_take: Callable[[int], Awaitable[None]] | None = None  # before the first item of a partition
        self.on_release: Callable[[int], Awaitable[None]] | None = None  # handing it over, still owned
        self.on_gone: Callable[[int], None] | None = None  # after it stopped: forget its state
        metrics.QUEUE_CAPACITY.set(max_events)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    async def open(self) -> int:
        return 0

    # --- ownership (called by cluster/leases.py) -------------------------------------------------

    async def take(self, p: int) -> bool:
        """Start consuming partition `p` after its stored position; False if the bus refused."""
        if self._closing:
            return False
        key = f"pos.{p}"
        try:
            try:
                entry = await self._bus.state.get(key)
                position = int(entry.value or b"0")
                revision = await self._bus.state.update(key, str(position).encode(), last=entry.revision)
                # What the stream holds now may have been processed by an owner that died before
                # advancing the position: the runner asks the store which ids it has.
                replay_upto = (await self._bus.js.stream_info(self._bus.settings.stream)).state.last_seq
            except KeyNotFoundError:
                # Taken for the first time: no worker has read it, its backlog is all new.
                position = replay_upto = 0
                revision = await self._bus.state.create(key, b"0")
            if self.on_take is not None:
                await self.on_take(p)
            self._epochs += 1
            part = _Partition(p, self._epochs, position, revision, replay_upto, position)
            part.sub = await self._bus.js.pull_subscribe(
                self._bus.subject(p),
                durable=None,
                stream=self._bus.settings.stream,
                config=_consumer(position),
            )
        except Exception as e:  # a stale revision (taken meanwhile), no quorum, a timeout
            log.warning("partition %d: cannot take it now: %s: %s", p, type(e).__name__, e)
            return False
        self._parts[p] = part
        part.task = asyncio.create_task(self._fetch_loop(part), name=f"partition-{p}")
        self.stats.taken += 1
        TAKEN.inc()
        OWNED.set(len(self._parts))
        log.info("partition %d taken from stream sequence %d", p, position + 1)
        return True

    def covered(self, p: int) -> int | None:
        """The last stream sequence of `p` processed and stored here (None: not ours)."""
        part = self._parts.get(p)
        return part.done if part is not None else None

    async def drop(self, p: int, hand_over: bool = True) -> None:
        """Stop at once: what was fetched but not acked is left to the next owner (it restarts
        from the stored position; the store ignores ids it already has). Handing over (not fenced
        out), the partition's level-2 state is saved first for the next owner."""
        if hand_over and p in self._parts and self.on_release is not None:
            try:
                await self.on_release(p)
            except Exception:
                log.exception("partition %d: could not save its level-2 state at hand-over", p)
        part = self._parts.pop(p, None)
        if part is None:
            return
        self.stats.lost += 1
        OWNED.set(len(self._parts))
        if part.task is not None:
            part.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await part.task
        if part.sub is not None:
            with contextlib.suppress(Exception):
                await part.sub.unsubscribe()
        # Items not yet taken by the runner are forgotten; those it holds are acked without
        # moving the position (their epoch is gone).
        waiting = {it.seq for it in self._items}
        gone = {pd.seq for pd in self._pending if pd.partition == p and pd.seq in waiting}
        kept = [it for it in self._items if it.seq not in gone]
        self._items.clear()  # in place: the runner may be waiting on this very deque
        self._items.extend(kept)
        self._depth -= sum(pd.count for pd in self._pending if pd.seq in gone)
        self._pending = collections.deque(pd for pd in self._pending if pd.seq not in gone)
        metrics.QUEUE_DEPTH.set(self._depth)
        if self._depth < self._max_events:
            self._room.set()
        if self.on_gone is not None:
            self.on_gone(p)
        log.info("partition %d released", p)

    async def _fetch_loop(self, part: _Partition) -> None:
        assert part.sub is not None
        while True:
            await self._room.wait()
            try:
                msgs = await part.sub.fetch(FETCH, timeout=1.0)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a NATS node restarting: the client reconnects, we ask again
                self.failing = f"{type(e).__name__}: {e}"
                await asyncio.sleep(0.5)
                continue
            self.failing = None
            for msg in msgs:
                stream_seq = msg.metadata.sequence.stream
                # Sent again by JetStream (unacked past ACK_WAIT: the store was down that long):
                # the runner asks the store which of its events it already has.
                again = msg.metadata.num_delivered > 1
                data, count = _payload(msg.headers or {}, msg.data or b"", self._max_events)
                seq = self._next_seq
                self._next_seq += 1
                self._pending.append(_Pending(seq, part.number, part.epoch, msg, stream_seq, count))
                self._items.append(
                    QueueItem(seq, data, count, redelivered=stream_seq <= part.replay_upto or again)
                )
                self._depth += count
            metrics.QUEUE_DEPTH.set(self._depth)
            if self._depth >= self._max_events:
                self._room.clear()
            self._available.set()

    # --- the queue interface (the pipeline runner) -----------------------------------------------

    async def put(self, payload: bytes, count: int, events: list[Event] | None = None) -> int:
        """The worker's own events, durable on return: acked by JetStream, as at an ingest process."""
        return await self._outbox.put(payload, count, events)

    async def get(self, max_events: int) -> list[QueueItem]:
        return await take_batch(self._items, self._available, max_events)

    async def ack(self, seq: int) -> None:
        """Everything up to `seq` is stored: ack it to JetStream and advance each partition's position."""
        last: dict[int, _Pending] = {}
        done = 0
        while self._pending and self._pending[0].seq <= seq:
            pend = self._pending.popleft()
            done += pend.count
            last[pend.partition] = pend
        self._depth -= done
        metrics.QUEUE_DEPTH.set(self._depth)
        if self._depth < self._max_events:
            self._room.set()
        advances = []
        for p, pend in last.items():
            part = self._parts.get(p)
            if part is None or part.epoch != pend.epoch:
                continue  # given up meanwhile: the next owner processes it again from its position
            part.done = pend.stream_seq
            advances.append(self._advance(part, pend))
        # One replicated KV write per partition: side by side, not one round trip after another.
        await asyncio.gather(*advances)

    async def _advance(self, part: _Partition, pend: _Pending) -> None:
        key = f"pos.{part.number}"
        try:
            part.revision = await self._bus.state.update(
                key, str(pend.stream_seq).encode(), last=part.revision
            )
        except KeyWrongLastSequenceError:
            self.stats.fenced += 1
            FENCED.inc()
            log.error("partition %d: another worker took it over; this worker stops it", part.number)
            await self.drop(part.number, hand_over=False)
            return
        except Exception as e:  # NATS unreachable: kept for the next ack, or for the next owner
            log.warning("partition %d: position not saved: %s: %s", part.number, type(e).__name__, e)
            return
        part.position = pend.stream_seq
        with contextlib.suppress(Exception):
            await pend.msg.ack()  # AckAll: the consumer forgets everything up to here

    def depth(self) -> int:
        return self._depth

    def healthy(self) -> bool:
        return self._bus.nc.is_connected

    def retry_after(self) -> float | None:
        """Push-back for the worker's own events: too many of them waiting for JetStream's ack."""
        return self._outbox.retry_after()

    def close_for_input(self) -> None:
        """Shutdown: fetch no more; what was fetched is drained and acked as usual. The outbox stays
        open while the batches drain: an event the pipeline makes then (a calendar change starting)
        is published for the partition's next owner rather than lost."""
        self._closing = True
        for part in self._parts.values():
            if part.task is not None:
                part.task.cancel()

    async def close(self) -> None:
        await self._outbox.close()
        for p in list(self._parts):
            await self.drop(p)


def _consumer(position: int) -> ConsumerConfig:
    start = (
        {"deliver_policy": DeliverPolicy.ALL}
        if position == 0
        else {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1}
    )
    return ConsumerConfig(
        ack_policy=AckPolicy.ALL,
        ack_wait=ACK_WAIT,
        max_ack_pending=-1,
        inactive_threshold=30.0,  # a dead worker's consumer goes away by itself
        **start,
    )


MAX_INFLATED = 64 << 20  # bytes a compressed message may inflate to (ingest bodies are far smaller)


def _payload(headers: dict[str, str], data: bytes, max_events: int) -> tuple[bytes, int]:
    """A message's events and their count, as the ingest side wrote them. The stream is writable
    by any client holding the NATS credentials, so a message is not trusted: a count that is not
    a number is taken as 1 and bounded by the queue's size, and a payload that does not inflate
    (or would inflate past MAX_INFLATED) is passed on as it came, for the runner to set aside as
    undecodable (runner.py) rather than stopping the partition's fetch loop."""
    try:
        count = min(max(int(headers.get(COUNT, "1")), 1), max_events)
    except ValueError:
        count = 1
    if headers.get(ENCODING) != "deflate":
        return data, count
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, MAX_INFLATED)
        if inflater.unconsumed_tail or not inflater.eof:
            raise zlib.error("truncated, or larger than MAX_INFLATED")
    except zlib.error as e:
        log.error("stream message not inflatable (%s): set aside as undecodable", e)
        return data, count
    return out, count
