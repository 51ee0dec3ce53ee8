"""Partition ownership against a real 3-node JetStream cluster, in-process: fair shares, takeover
after a lease expires, and fencing of an old owner that wakes up."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from correlator.cluster.bus import Bus, connect
from correlator.cluster.consume import PartitionQueue
from correlator.cluster.leases import Leases
from correlator.cluster.publish import BusQueue
from correlator.config import ClusterConfig
from correlator.event import Event, dumps_events
from tests.support.nats import NatsCluster, nats_cluster

__all__ = ["nats_cluster"]

pytestmark = pytest.mark.integration


def settings(nats: NatsCluster, stream: str, ttl: float = 1.0) -> ClusterConfig:
    return ClusterConfig(servers=nats.servers, stream=stream, partitions=4, replicas=3, lease_ttl=ttl)


async def test_fair_share_and_takeover_after_a_lease_expires(nats_cluster: NatsCluster) -> None:
    s = settings(nats_cluster, f"l{secrets.token_hex(3)}")
    a_bus, b_bus = await connect(s), await connect(s)
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def member(name: str, bus: Bus) -> Leases:
        async def gain(p: int) -> bool:
            taken[name].append(p)
            return True

        async def loss(p: int) -> None:
            taken[name].remove(p)

        return Leases(bus.leases, name, 4, s.lease_ttl, gain, loss)

    a, b = member("a", a_bus), member("b", b_bus)
    try:
        await a.round()
        assert sorted(taken["a"]) == [0, 1, 2, 3]  # alone: everything
        await b.round()  # b is alive now; a sees it at its next round and gives up half
        await a.round()
        await b.round()
        assert len(taken["a"]) == 2 and len(taken["b"]) == 2
        assert set(taken["a"]) | set(taken["b"]) == {0, 1, 2, 3}
        # a stops renewing (killed): once its leases expire, b takes everything
        for _ in range(30):
            await asyncio.sleep(s.lease_ttl / 3)
            await b.round()
            if len(taken["b"]) == 4:
                break
        assert sorted(taken["b"]) == [0, 1, 2, 3]
        # a wakes up: its renewals are refused, it stops every partition it believed it had
        await a.round()
        assert taken["a"] == []
    finally:
        await a_bus.close()
        await b_bus.close()


async def test_an_old_owner_that_wakes_up_is_fenced_out(nats_cluster: NatsCluster) -> None:
    s = settings(nats_cluster, f"f{secrets.token_hex(3)}")
    bus_a, bus_b, bus_in = await connect(s), await connect(s), await connect(s)
    try:
        ingest = BusQueue(bus_in, lambda ev: "one-key", 1000, 1.0)
        events = [Event("e1", 1.0, 1.0, "test", "h1", "t")]
        await ingest.put(dumps_events(events), 1, events)
        a = PartitionQueue(bus_a, 1000)
        b = PartitionQueue(bus_b, 1000)
        for q in (a, b):
            for part in range(4):
                assert await q.take(part)
        # both read the event (a believes it still owns the partitions; b took them over)
        [item_a] = await asyncio.wait_for(a.get(100), 10)
        [item_b] = await asyncio.wait_for(b.get(100), 10)
        assert item_a.payload == item_b.payload
        await b.ack(item_b.seq)  # the current owner advances the position
        await a.ack(item_a.seq)  # the old owner's advance is refused: it stops the partition
        assert a.stats.fenced == 1 and b.stats.fenced == 0
        assert len(a.partitions) == 3 and len(b.partitions) == 4
        entries = [await bus_in.state.get(f"pos.{part}") for part in range(4)]
        assert sorted(int(e.value or b"0") for e in entries)[-1] >= 1  # b's position stands
        await a.close()
        await b.close()
    finally:
        for bus in (bus_a, bus_b, bus_in):
            await bus.close()
