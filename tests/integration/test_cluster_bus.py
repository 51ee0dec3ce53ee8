"""The event stream's wire form against a real 3-node JetStream cluster: what an ingest process
publishes, a worker reads back as the same events, compressed or not (docs/cluster.md, "Sizing")."""

from __future__ import annotations

import asyncio
import secrets
import time
import zlib

import pytest

from correlator.cluster.bus import connect
from correlator.cluster.consume import MAX_INFLATED
from correlator.cluster.partition import partition_of
from correlator.cluster.publish import COUNT, ENCODING, BusQueue
from correlator.config import ClusterConfig
from correlator.deadletter import DeadLetter
from correlator.event import Event, Severity, dumps_events
from correlator.ingest import Ingest
from correlator.queue import QueueItem
from correlator.runner import decode_items
from tests.support.nats import NatsCluster, nats_cluster, worker_queue

__all__ = ["nats_cluster"]

pytestmark = pytest.mark.integration


def events(n: int, tag: str) -> list[Event]:
    now = time.time()
    return [
        Event(
            id=f"{tag}-{i}",
            time=now,
            received=now,
            source="test",
            host=f"h{i}",
            type="T",
            severity=Severity.MINOR,
        )
        for i in range(n)
    ]


async def test_a_worker_reads_back_what_ingest_published_compressed_or_not(nats_cluster: NatsCluster) -> None:
    s = ClusterConfig(
        servers=nats_cluster.servers, stream=f"w{secrets.token_hex(3)}", partitions=1, replicas=3
    )
    bus = await connect(s)
    try:
        ingest = BusQueue(bus, lambda ev: ev.host, 10_000, 1.0)
        big, small, old = events(50, "big"), events(1, "small"), events(50, "old")
        await ingest.put(dumps_events(big), len(big), big)  # compressed on the wire
        await ingest.put(dumps_events(small), len(small), small)  # too small to be worth it
        # as an ingest process of an earlier version published it: plain, no encoding header
        await bus.js.publish(bus.subject(0), dumps_events(old), headers={COUNT: str(len(old))})
        msgs = [await bus.js.get_msg(s.stream, seq) for seq in (1, 2, 3)]
        assert [(m.headers or {}).get(ENCODING) for m in msgs] == ["deflate", None, None]
        assert len(msgs[0].data or b"") < len(dumps_events(big)) / 3

        worker = worker_queue(bus, 10_000)
        assert await worker.take(0)
        got: list[Event] = []
        while len(got) < 101:
            for item in await worker.get(1_000):
                got.extend(item.decode())
        assert got == [*big, *small, *old]
        await worker.close()
    finally:
        await bus.close()


async def test_a_worker_publishes_its_own_events_to_the_partition_of_their_key(
    nats_cluster: NatsCluster,
) -> None:
    """What a worker makes itself (a change's lifecycle event, a dead letter retried through its
    API) goes to the stream like an ingest process' events: in the stream when emit returns, in the
    partition its key routes to, for whichever worker owns it."""
    s = ClusterConfig(
        servers=nats_cluster.servers, stream=f"o{secrets.token_hex(3)}", partitions=4, replicas=3
    )
    bus = await connect(s)
    try:
        worker = worker_queue(bus, 10_000)
        own = events(12, "own")
        await Ingest(worker).emit(own, "changes")
        want: dict[int, set[str]] = {}
        for ev in own:
            want.setdefault(partition_of("host:" + ev.host, 4), set()).add(ev.id)
        assert (await bus.js.stream_info(s.stream)).state.messages == len(want)  # acked: durable
        for p, ids in want.items():
            assert await worker.take(p)
            got: set[str] = set()
            async with asyncio.timeout(20):
                while len(got) < len(ids):
                    got |= {e.id for item in await worker.get(1_000) for e in item.decode()}
            assert got == ids
            await worker.drop(p)
        await worker.close()
    finally:
        await bus.close()


class _DeadLetters:
    def __init__(self) -> None:
        self.items: list[DeadLetter] = []

    async def add_dead_letters(self, items: list[DeadLetter]) -> int:
        self.items.extend(items)
        return len(items)


async def test_ingest_serialises_each_partitions_part_and_sets_aside_what_orjson_refuses(
    nats_cluster: NatsCluster,
) -> None:
    s = ClusterConfig(
        servers=nats_cluster.servers, stream=f"s{secrets.token_hex(3)}", partitions=4, replicas=3
    )
    bus = await connect(s)
    try:
        dead = _DeadLetters()
        ingest = Ingest(BusQueue(bus, lambda ev: ev.host, 10_000, 1.0), dead)  # type: ignore[arg-type]
        good = events(40, "good")
        await ingest.emit(good, "test")
        bad = events(3, "bad")
        bad[1].message = "lone \udc80 surrogate"  # orjson refuses it
        await ingest.emit(bad, "test")
        assert [d.event_id for d in dead.items] == ["bad-1"]

        got: list[Event] = []
        worker = worker_queue(bus, 10_000)
        for p in range(4):
            assert await worker.take(p)
        while len(got) < 42:
            for item in await worker.get(1_000):
                got.extend(item.decode())
        assert sorted(e.id for e in got) == sorted(e.id for e in [*good, bad[0], bad[2]])
        await worker.close()
    finally:
        await bus.close()


async def test_a_malformed_stream_message_is_set_aside_and_the_partition_reads_on(
    nats_cluster: NatsCluster,
) -> None:
    """Any client with the NATS credentials can publish: a count that is not a number, a message
    flagged deflate that is not, and a deflate bomb are each one undecodable item for the runner
    to dead-letter, and the good message behind them is still read."""
    s = ClusterConfig(
        servers=nats_cluster.servers, stream=f"m{secrets.token_hex(3)}", partitions=1, replicas=3
    )
    bus = await connect(s)
    try:
        good = events(3, "good")
        bomb = zlib.compress(b"[" + b" " * (MAX_INFLATED + 1) + b"]", 9)
        for headers, body in (
            ({COUNT: "x"}, b"not json"),
            ({COUNT: "1", ENCODING: "deflate"}, b"not zlib"),
            ({COUNT: "99999999999", ENCODING: "deflate"}, bomb),
            ({COUNT: "3"}, dumps_events(good)),
        ):
            await bus.js.publish(bus.subject(0), body, headers=headers)
        worker = worker_queue(bus, 10_000)
        assert await worker.take(0)
        items: list[QueueItem] = []
        async with asyncio.timeout(20):  # a fetch loop killed by the first message never gets here
            while len(items) < 4:
                items.extend(await worker.get(1_000))
        assert [it.count for it in items] == [1, 1, 10_000, 3]  # bounded, never a crash
        got, dead = decode_items(items)  # what the worker's runner does with them
        assert got == good and len(dead) == 3
        await worker.close()
    finally:
        await bus.close()
