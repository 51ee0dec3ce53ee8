"""Partition ownership against a real 3-node JetStream cluster, in-process: fair shares, takeover
after a lease expires, and fencing of an old owner that wakes up."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

import pytest

from correlator.cluster.bus import Bus, connect
from correlator.cluster.leases import Leases
from correlator.cluster.publish import BusQueue
from correlator.config import ClusterConfig
from correlator.event import Event, dumps_events
from tests.support.nats import NatsCluster, nats_cluster, worker_queue

__all__ = ["nats_cluster"]

pytestmark = pytest.mark.integration


async def round_of(leases: Leases, tries: int = 3) -> None:
    """One round, tried again after a JetStream API timeout, as the workers' lease loop does (a
    loaded machine can take longer than the API timeout to elect the new bucket's stream leader)."""
    for attempt in range(tries):
        try:
            await leases.round()
            return
        except TimeoutError:  # nats.errors.TimeoutError too
            if attempt == tries - 1:
                raise


async def connected(s: ClusterConfig, tries: int = 3) -> Bus:
    """connect(), tried again after a JetStream API timeout (declaring the stream and buckets is
    idempotent): the first test of the module meets a cluster that may still be settling."""
    for attempt in range(tries):
        try:
            return await connect(s)
        except TimeoutError:  # nats.errors.TimeoutError
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def settings(nats: NatsCluster, stream: str, ttl: float = 1.0) -> ClusterConfig:
    return ClusterConfig(servers=nats.servers, stream=stream, partitions=4, replicas=3, lease_ttl=ttl)


def member(name: str, bus: Bus, s: ClusterConfig, taken: dict[str, list[int]]) -> Leases:
    """A worker's leases whose partitions gained and lost are listed in `taken[name]`."""

    async def gain(p: int) -> bool:
        taken[name].append(p)
        return True

    async def loss(p: int) -> None:
        taken[name].remove(p)

    return Leases(bus, name, 4, s.lease_ttl, gain, loss)


async def test_fair_share_and_takeover_after_a_lease_expires(nats_cluster: NatsCluster) -> None:
    s = settings(nats_cluster, f"l{secrets.token_hex(3)}")
    a_bus, b_bus = await connected(s), await connected(s)
    taken: dict[str, list[int]] = {"a": [], "b": []}

    a, b = member("a", a_bus, s, taken), member("b", b_bus, s, taken)
    try:
        await round_of(a)
        assert sorted(taken["a"]) == [0, 1, 2, 3]  # alone: everything
        await round_of(b)  # b is alive now; a sees it at its next round and gives up half
        await round_of(a)
        await round_of(b)
        assert len(taken["a"]) == 2 and len(taken["b"]) == 2
        assert set(taken["a"]) | set(taken["b"]) == {0, 1, 2, 3}
        # a stops renewing (killed): once its leases expire, b takes everything
        for _ in range(30):
            await asyncio.sleep(s.lease_ttl / 3)
            await round_of(b)
            if len(taken["b"]) == 4:
                break
        assert sorted(taken["b"]) == [0, 1, 2, 3]
        # a wakes up: its renewals are refused, it stops every partition it believed it had
        await round_of(a)
        assert taken["a"] == []
    finally:
        await a_bus.close()
        await b_bus.close()


def on_deliveries(bus: Bus, change: Any) -> None:
    """Pass every message JetStream pushes to a callback on `bus` through `change` first (returns
    the message to deliver, or None to drop it)."""
    subscribe = bus.js.subscribe

    async def wrapped(subject: str, **kwargs: Any) -> Any:
        cb = kwargs.get("cb")
        if cb is not None:

            async def changed(msg: Any) -> None:
                if (msg := change(msg)) is not None:
                    await cb(msg)

            kwargs["cb"] = changed
        return await subscribe(subject, **kwargs)

    bus.js.subscribe = wrapped  # type: ignore[method-assign]


def one_more_pending(msg: Any) -> Any:
    """The message as nats-server 2.9 sometimes delivers a key listing's messages right after a key
    was rewritten: its pending count one too high, so the last one never says nothing is left."""
    msg._metadata = dataclasses.replace(msg.metadata, num_pending=msg.metadata.num_pending + 1)
    return msg


async def test_a_round_ends_when_the_server_counts_one_message_too_many(nats_cluster: NatsCluster) -> None:
    s = settings(nats_cluster, f"o{secrets.token_hex(3)}", ttl=3.0)
    a_bus, b_bus = await connected(s), await connected(s)
    on_deliveries(b_bus, one_more_pending)
    taken: dict[str, list[int]] = {"a": [], "b": []}

    a, b = member("a", a_bus, s, taken), member("b", b_bus, s, taken)
    try:
        await round_of(a)
        # b lists a's keys (nats-py's KeyValue.keys() waited for good here): two members, no
        # partition free; a gives two up at its next round, b takes them at its next
        await asyncio.wait_for(round_of(b), 30)
        assert b.members == 2 and taken["b"] == []
        await round_of(a)
        await asyncio.wait_for(round_of(b), 30)
        assert sorted(taken["a"] + taken["b"]) == [0, 1, 2, 3] and len(taken["b"]) == 2
    finally:
        await a_bus.close()
        await b_bus.close()


async def test_a_listing_counts_the_keys_rewritten_after_the_rounds_own_write(
    nats_cluster: NatsCluster,
) -> None:
    """The bucket keeps one message per key: a member renewing between b's own write and the end of
    b's listing has its only message after b's, and must still be counted (else b takes too big a
    share, round after round, when the two renew in step)."""
    s = settings(nats_cluster, f"r{secrets.token_hex(3)}", ttl=3.0)
    a_bus, b_bus = await connected(s), await connected(s)
    taken: dict[str, list[int]] = {"a": [], "b": []}
    a, b = member("a", a_bus, s, taken), member("b", b_bus, s, taken)
    put = b_bus.leases.put
    subscribe = b_bus.js.subscribe

    async def put_then_a_renews(key: str, value: bytes) -> int:
        rev = await put(key, value)
        if key == "m.b":
            await a_bus.leases.put("m.a", b"alive")
        return rev

    async def slow_renewals(subject: str, **kwargs: Any) -> Any:
        cb = kwargs["cb"]

        async def late(msg: Any) -> None:
            if msg.subject.endswith(".m.a"):  # a's renewal reaches b's listing a little later
                await asyncio.sleep(0.2)
            await cb(msg)

        kwargs["cb"] = late
        return await subscribe(subject, **kwargs)

    try:
        await round_of(a)
        b_bus.leases.put = put_then_a_renews  # type: ignore[method-assign]
        b_bus.js.subscribe = slow_renewals  # type: ignore[method-assign]
        await asyncio.wait_for(b.round(), 30)
        assert b.members == 2 and taken["b"] == []
    finally:
        await a_bus.close()
        await b_bus.close()


async def test_a_key_listing_that_never_ends_fails_the_round_in_time(nats_cluster: NatsCluster) -> None:
    """No message arrives (a consumer lost on a node, a server that never says the listing is
    complete): the round fails after the listing's time limit, leaves no subscription behind, and
    the next round lists the keys again."""
    s = settings(nats_cluster, f"n{secrets.token_hex(3)}", ttl=3.0)
    bus = await connected(s)
    deliver = False
    on_deliveries(bus, lambda msg: msg if deliver else None)
    taken: dict[str, list[int]] = {"a": []}
    leases = member("a", bus, s, taken)
    leases.list_timeout = 0.5
    try:
        subs = len(bus.nc._subs)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(leases.round(), 30)
        assert len(bus.nc._subs) == subs and taken["a"] == []
        deliver = True
        leases.list_timeout = 5.0
        await round_of(leases)
        assert sorted(taken["a"]) == [0, 1, 2, 3]
    finally:
        await bus.close()


async def test_an_old_owner_that_wakes_up_is_fenced_out(nats_cluster: NatsCluster) -> None:
    s = settings(nats_cluster, f"f{secrets.token_hex(3)}")
    bus_a, bus_b, bus_in = await connected(s), await connected(s), await connected(s)
    try:
        ingest = BusQueue(bus_in, lambda ev: "one-key", 1000, 1.0)
        events = [Event("e1", 1.0, 1.0, "test", "h1", "t")]
        await ingest.put(dumps_events(events), 1, events)
        a = worker_queue(bus_a, 1000)
        b = worker_queue(bus_b, 1000)
        for q in (a, b):
            for part in range(4):
                assert await q.take(part)
        # both read the event (a believes it still owns the partitions; b took them over)
        [item_a] = await asyncio.wait_for(a.get(100), 10)
        [item_b] = await asyncio.wait_for(b.get(100), 10)
        assert item_a.payload == item_b.payload
        # a took the partitions first: their backlog is new, not the redelivered path that asks
        # the store which ids it has; b took them from an owner that may have stored some
        assert not item_a.redelivered and item_b.redelivered
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


async def test_incident_timers_run_on_the_owner_of_partition_0_only(
    nats_cluster: NatsCluster, tmp_path
) -> None:
    from correlator.clock import Clock
    from correlator.cluster.roles import ClusterNode
    from correlator.incidents.backend import create_store
    from correlator.incidents.service import IncidentService
    from correlator.incidents.settings import parse_settings
    from correlator.responses import IncidentRequest

    s = settings(nats_cluster, f"t{secrets.token_hex(3)}")
    bus_a, bus_b = await connected(s), await connected(s)
    clock = Clock(1_800_000_000.0)
    incs = [
        IncidentService(create_store(None, tmp_path), parse_settings({"close_after": "1h"}), clock)
        for _ in "ab"
    ]
    nodes = []
    for name, bus in (("a", bus_a), ("b", bus_b)):
        queue = worker_queue(bus, 100)
        nodes.append(
            ClusterNode("worker", bus, queue, Leases(bus, name, 4, s.lease_ttl, queue.take, queue.drop))
        )
    a, b = nodes
    try:
        for svc in incs:
            svc.shared = True
            await svc.open()
        assert a.leases is not None
        await a.leases.round()  # a owns every partition, 0 included: the timer leader
        assert a.timer_leader and not b.timer_leader
        ev = Event("e1", clock.now(), clock.now(), "test", "r1", "cpu.high")
        # worker b (not the leader) opens and resolves an incident the leader has never seen
        await incs[1].apply([IncidentRequest("open", "cpu:r1", ev, "cpu")])
        await incs[1].apply([IncidentRequest("resolve", "cpu:r1", ev, "cpu")])
        clock.advance_to(clock.now() + 7200)  # past close_after
        await b.run_timers(incs[1], None, clock.now())  # not the leader: nothing happens
        [inc] = await incs[0].store.latest_for_keys(["cpu:r1"])
        assert inc.status.value == "resolved"
        await a.run_timers(incs[0], None, clock.now())  # the leader reads it and closes it
        [inc] = await incs[0].store.latest_for_keys(["cpu:r1"])
        assert inc.status.value == "closed"
    finally:
        for svc in incs:
            await svc.close()
        for node in nodes:
            await node.close()
