"""MQTT collector: subscribes to brokers and turns messages into events (docs/collectors/mqtt.md).

One `BrokerConnection` task per broker; each message is routed to the first subscription whose
topic template matches it, decoded, emitted durably, and only then acknowledged to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from collectors.mqtt.connection import BrokerConnection
from collectors.mqtt.decode import Decoder
from collectors.mqtt.settings import MqttSettings, parse_settings
from correlator.collector import CollectorContext


class MqttCollector:
    name = "mqtt"

    def __init__(self, settings: MqttSettings, ctx: CollectorContext) -> None:
        self.settings = settings
        decoders = [Decoder(s) for s in settings.subscriptions]
        self.connections = [
            BrokerConnection(b, [d for d in decoders if b.name in d.sub.brokers], ctx.emit, ctx.dead_letter)
            for b in settings.brokers
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.where = "brokers " + ", ".join(f"{b.name} {b.host}:{b.port}" for b in settings.brokers)

    async def start(self) -> None:
        """Connects in the background: a broker that is down is retried, never fatal."""
        self._tasks = [asyncio.create_task(c.run(), name=f"mqtt:{c.settings.name}") for c in self.connections]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def healthy(self) -> bool:
        return all(c.connected for c in self.connections)


def create(settings: Mapping[str, Any], ctx: CollectorContext) -> MqttCollector:
    return MqttCollector(parse_settings(settings), ctx)
