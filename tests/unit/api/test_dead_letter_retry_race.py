"""Two retries of one dead letter at once, against the daemon's own app on SQLite and PostgreSQL:
the first claims it until its event is durable and the dead letter deleted; the second is a 409
while that lasts, so the event goes back on the queue once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.common import STATE
from correlator.deadletter import DeadLetter
from correlator.event import Event
from tests.support.postgres import pg_dsn, reset_pg
from tests.unit.api.conftest import bearer, daemon_app, token_config

__all__ = ["pg_dsn"]

ADMIN = bearer("admin")


def wire(name: str) -> dict[str, object]:
    now = time.time()
    return {"id": name, "time": now, "received": now, "source": "webhook:generic", "host": "h1",
            "type": "T", "severity": "minor", "resource": "", "message": "", "attributes": {},
            "fingerprint": name, "count": 1, "last_seen": now}  # fmt: skip


class GatedEmit:
    """The daemon's emit, held at a gate: the journal is slow (a long fsync) while a retry is in it."""

    def __init__(self, emit: Callable[[list[Event], str], Awaitable[None]]) -> None:
        self._emit = emit
        self.gate = asyncio.Event()
        self.entered = 0

    async def __call__(self, events: list[Event], source: str) -> None:
        self.entered += 1
        await self.gate.wait()
        await self._emit(events, source)


async def until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.005)
    assert predicate(), what


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    dsn = request.getfixturevalue("pg_dsn")
    await reset_pg(dsn)
    return {"storage.dsn": dsn}


async def test_concurrent_retries_of_one_dead_letter_emit_its_event_once(
    tmp_path: Path, storage: dict[str, str]
) -> None:
    async with daemon_app(tmp_path, **{"http.tokens": token_config(), **storage}) as app:
        state = app[STATE]
        assert state.ingest is not None
        await state.store.add_dead_letters(
            [
                DeadLetter(
                    "store_rejected", "webhook:generic", "ev1", "refused", json.dumps(wire("ev1")), 1.8e9
                )
            ]
        )
        (letter,) = (await state.store.dead_letters(10, None, None)).items
        gated = GatedEmit(state.ingest.emit)
        state.ingest.emit = gated  # type: ignore[method-assign]
        url = f"/api/v1/dead-letters/{letter.id}/retry"
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            first = asyncio.create_task(client.post(url, headers=ADMIN))
            await until(lambda: gated.entered == 1, "the first retry is writing its event")
            second = asyncio.create_task(client.post(url, headers=ADMIN))
            # Answered at once, or (without a claim) inside the journal too: either way, settled.
            await until(lambda: second.done() or gated.entered == 2, "the second retry got somewhere")
            gated.gate.set()
            answers = [await first, await second]
            statuses = [a.status for a in answers]
            bodies = [orjson.loads(await a.read()) for a in answers]
            assert statuses == [202, 409], bodies
            assert "being retried" in bodies[1]["error"]
            assert gated.entered == 1
            assert (await state.store.dead_letters(10, None, None)).items == []
            third = await client.post(url, headers=ADMIN)
            assert third.status == 404  # retried and gone: nothing left to put back
        ids = [e["id"] for item in await state.queue.get(1000) for e in orjson.loads(item.payload)]
        assert ids == ["ev1"]
