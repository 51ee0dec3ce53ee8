"""A real Mosquitto with a password file and an ACL refusing the collector's password: a clear error
without the secret, counted, retried with a doubling backoff, and connected (and collecting) once
the broker's password file is fixed and reloaded."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from collectors.mqtt import connection
from collectors.mqtt.connection import BrokerConnection
from collectors.mqtt.decode import Decoder
from collectors.mqtt.settings import parse_settings
from correlator.event import Event
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


def refusals(broker: str) -> float:
    labels = {"broker": broker, "outcome": "not_authorized"}
    return REGISTRY.get_sample_value("correlator_mqtt_connects_total", labels) or 0.0


async def test_refused_credentials_are_a_clear_counted_error_retried_until_the_broker_takes_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Mosquitto.create(
        tmp_path / "broker", user=("noc", "the-right-one"), acl="user noc\ntopic readwrite lab/#\n"
    )
    broker.start()
    secret = f"s3cret-{secrets.token_hex(4)}"
    (tmp_path / "mqtt.pass").write_text(secret + "\n")
    name = f"auth{secrets.token_hex(2)}"
    s = parse_settings(
        {
            "brokers": [
                {
                    "name": name,
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "client_id": f"correlator-{name}",
                    "username": "noc",
                    "password_file": str(tmp_path / "mqtt.pass"),
                    "reconnect_min": "100ms",
                    "reconnect_max": "1s",
                }
            ],
            "subscriptions": [{"name": "lab", "topic": "lab/{host}", "defaults": {"type": "lab:reading"}}],
        }
    )
    waits: list[float] = []
    fixed = asyncio.Event()

    async def backoff(seconds: float) -> None:  # recorded; held after six refusals until the fix
        waits.append(seconds)
        if len(waits) >= 6:
            await fixed.wait()
        await asyncio.sleep(0)

    monkeypatch.setattr(connection, "_sleep", backoff)
    events: list[Event] = []

    async def emit(batch: list[Event], source: str) -> None:
        events.extend(batch)

    before = refusals(name)
    conn = BrokerConnection(s.brokers[0], [Decoder(s.subscriptions[0])], emit)
    caplog.set_level(logging.WARNING, logger=connection.__name__)
    task = asyncio.create_task(conn.run())
    try:
        await until(lambda: len(waits) == 6, "six refused attempts")
        assert refusals(name) - before == 6 and not conn.connected
        # Doubling from reconnect_min to reconnect_max, each with 50-100 % jitter.
        for wait, ceiling in zip(waits, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], strict=True):
            assert ceiling / 2 <= wait <= ceiling, waits
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors, caplog.text
        text = errors[0].getMessage()
        assert "refused the credentials of user 'noc'" in text and "Not authorized" in text, text
        assert secret not in caplog.text and "the-right-one" not in caplog.text

        broker.set_password("noc", secret)  # the broker's password file fixed and reloaded (SIGHUP)
        monkeypatch.setattr(connection, "_sleep", asyncio.sleep)
        fixed.set()
        await until(lambda: conn.connected, "connected once the broker takes the password")
        # Connected comes a moment before the SUBACK: publish until the subscription delivers.
        async with asyncio.timeout(20):
            while not events:
                broker.publish([("lab/sensor-1", b'{"message": "reading"}')])
                for _ in range(50):
                    if events:
                        break
                    await asyncio.sleep(0.01)
        assert events[0].host == "sensor-1" and events[0].type == "lab:reading"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        broker.stop()
