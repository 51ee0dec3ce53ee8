"""UDP while the queue is full: the batch is held and retried after Retry-After; beyond
max_pending_events datagrams are counted as queue_full, never silently lost (real sockets, the
daemon's emit contract played by a function that raises QueueFull as the journal does)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web
from prometheus_client import REGISTRY

from collectors.syslog.intake import Intake
from collectors.syslog.settings import parse
from collectors.syslog.udp import UdpListener
from correlator.clock import Clock
from correlator.collector import CollectorContext
from correlator.config import Config
from correlator.errors import QueueFull
from correlator.event import Event


def queue_full() -> float:
    labels = {"transport": "udp", "reason": "queue_full"}
    return REGISTRY.get_sample_value("correlator_syslog_dropped_total", labels) or 0.0


async def test_full_queue_holds_the_batch_then_counts_what_does_not_fit(tmp_path: Path):
    accepted: list[Event] = []
    full = True

    async def emit(events: list[Event], source: str) -> None:
        if full:
            raise QueueFull(10, 10, 0.01)
        accepted.extend(events)

    ctx = CollectorContext(
        emit, lambda: 0.01 if full else None, web.Application(), Clock(), Config(), tmp_path
    )
    listener = UdpListener(Intake(parse({"max_pending_events": 5})), ctx)
    await listener.start(("127.0.0.1", 0))
    assert listener.address is not None
    before = queue_full()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(8):
            s.sendto(b"<13>1 - h app - - - message %d" % i, listener.address)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if queue_full() - before == 3:
                break
    assert queue_full() - before == 3
    assert accepted == []
    full = False
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(accepted) == 5:
            break
    await listener.stop()
    assert [e.message for e in accepted] == [f"message {i}" for i in range(5)]


def dropped(reason: str) -> float:
    labels = {"transport": "udp", "reason": reason}
    return REGISTRY.get_sample_value("correlator_syslog_dropped_total", labels) or 0.0


async def test_stopping_with_a_full_queue_counts_every_held_datagram(tmp_path: Path):
    async def emit(events: list[Event], source: str) -> None:
        raise QueueFull(10, 10, 0.01)

    ctx = CollectorContext(emit, lambda: 60.0, web.Application(), Clock(), Config(), tmp_path)
    listener = UdpListener(Intake(parse({"max_pending_events": 5, "max_batch_events": 2})), ctx)
    await listener.start(("127.0.0.1", 0))
    assert listener.address is not None
    before = dropped("queue_full") + dropped("shutting_down")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(8):
            s.sendto(b"<13>1 - h app - - - message %d" % i, listener.address)
        async with asyncio.timeout(10):
            while dropped("queue_full") + dropped("shutting_down") - before < 3:
                await asyncio.sleep(0.01)  # the socket is real: wait for the kernel to deliver
    await listener.stop()
    assert dropped("queue_full") + dropped("shutting_down") - before == 8
