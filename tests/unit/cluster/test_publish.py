"""The publisher at stop: a put whose JetStream ack is still coming is waited for (bounded) before
the bus is closed. A bus whose publish waits on a gate stands in for JetStream, which cannot be
made to hold one ack back at a chosen moment."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from correlator.cluster.publish import BusQueue
from correlator.errors import ShuttingDown
from correlator.event import Event, Severity

T0 = 1_800_000_000.0


class GatedBus:
    def __init__(self) -> None:
        self.settings = SimpleNamespace(partitions=1)
        self.gate = asyncio.Event()
        self.published = asyncio.Event()
        self.js = self
        self.nc = SimpleNamespace(is_connected=True)

    def subject(self, partition: int) -> str:
        return f"events.{partition}"

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> Any:
        self.published.set()
        await self.gate.wait()
        return SimpleNamespace(seq=7)


def change_started() -> Event:
    return Event("ev-1", T0, T0, "changes", "core-sw1", "change.started", Severity.INFO)


async def test_close_waits_for_the_acks_of_the_puts_in_flight() -> None:
    bus = GatedBus()
    q = BusQueue(bus, lambda ev: ev.host, 100, 1.0, gauges=False)  # type: ignore[arg-type]
    put = asyncio.create_task(q.put(b"", 1, [change_started()]))
    await asyncio.wait_for(bus.published.wait(), 5)
    closing = asyncio.create_task(q.close())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not closing.done()  # the bus must stay open for the ack
    with pytest.raises(ShuttingDown):
        await q.put(b"", 1, [change_started()])
    bus.gate.set()
    await asyncio.wait_for(closing, 5)
    assert put.done() and put.result() == 7


async def test_close_gives_up_on_an_ack_that_does_not_come() -> None:
    bus = GatedBus()
    q = BusQueue(bus, lambda ev: ev.host, 100, 1.0, gauges=False)  # type: ignore[arg-type]
    q.close_seconds = 0.01
    put = asyncio.create_task(q.put(b"", 1, [change_started()]))
    await asyncio.wait_for(bus.published.wait(), 5)
    await asyncio.wait_for(q.close(), 5)
    assert not put.done()
    put.cancel()
    await asyncio.gather(put, return_exceptions=True)
