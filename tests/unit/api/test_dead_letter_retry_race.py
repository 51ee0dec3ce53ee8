"""Two retries of one dead letter at once, against the daemon's own app on SQLite and PostgreSQL:
the first claims it until its event is durable and the dead letter deleted; the second (or a
delete) is a 409 while that lasts, so the event goes back on the queue once. The claim holds no
database connection or lock while the event is emitted, and a retry after one whose delete failed
does not queue the event again once it is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.common import STATE
from correlator.deadletter import Claim, DeadLetter
from correlator.event import Event
from correlator.store.postgres import PgEventStore
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


async def one_dead_letter(state: Any, name: str) -> int:
    raw = json.dumps(wire(name))
    await state.store.add_dead_letters(
        [DeadLetter("store_rejected", "webhook:generic", name, "refused", raw, 1.8e9)]
    )
    (letter,) = (await state.store.dead_letters(10, None, None)).items
    return letter.id


async def queued_ids(state: Any) -> list[str]:
    return [e["id"] for item in await state.queue.get(1000) for e in orjson.loads(item.payload)]


async def test_a_retry_in_progress_holds_no_connection_and_a_delete_meanwhile_is_a_409(
    tmp_path: Path, storage: dict[str, str]
) -> None:
    async with daemon_app(tmp_path, **{"http.tokens": token_config(), **storage}) as app:
        state = app[STATE]
        assert state.ingest is not None
        id_ = await one_dead_letter(state, "ev2")
        gated = GatedEmit(state.ingest.emit)
        state.ingest.emit = gated  # type: ignore[method-assign]
        url = f"/api/v1/dead-letters/{id_}"
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            retry = asyncio.create_task(client.post(url + "/retry", headers=ADMIN))
            await until(lambda: gated.entered == 1, "the retry is writing its event")
            if isinstance(state.store, PgEventStore):
                # A slow emit pins no pooled connection, and leaves the row unlocked.
                pool = state.store.pool
                assert pool.get_size() == pool.get_idle_size()
                await pool.fetchval("SELECT id FROM dead_letters WHERE id = $1 FOR UPDATE NOWAIT", id_)
            async with asyncio.timeout(10):  # answered at once, not after the retry
                deleted = await client.delete(url, headers=ADMIN)
            assert deleted.status == 409 and deleted.headers["Content-Type"].startswith("application/json")
            assert "being retried" in orjson.loads(await deleted.read())["error"]
            gated.gate.set()
            assert (await retry).status == 202
            assert (await client.delete(url, headers=ADMIN)).status == 404  # the retry deleted it
        assert await queued_ids(state) == ["ev2"]


async def test_a_retry_after_one_whose_delete_failed_does_not_queue_the_stored_event_again(
    tmp_path: Path, storage: dict[str, str]
) -> None:
    async with daemon_app(tmp_path, **{"http.tokens": token_config(), **storage}) as app:
        state = app[STATE]
        store = state.store
        id_ = await one_dead_letter(state, "ev3")
        claim_dead_letter = store.claim_dead_letter

        @contextlib.asynccontextmanager
        async def delete_lost(i: int) -> AsyncIterator[Claim]:
            async with claim_dead_letter(i) as claim:

                async def lost(_: int) -> None:
                    raise ConnectionResetError("the database went away before the commit")

                claim._delete = lost
                yield claim

        url = f"/api/v1/dead-letters/{id_}/retry"
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            store.claim_dead_letter = delete_lost
            first = await client.post(url, headers=ADMIN)
            assert first.status >= 500  # the event is queued; the dead letter stays
            store.claim_dead_letter = claim_dead_letter
            [item] = await state.queue.get(1000)
            await store.write(
                [Event.from_wire(e) for e in orjson.loads(item.payload)]
            )  # the pipeline stored it
            await state.queue.ack(item.seq)
            second = await client.post(url, headers=ADMIN)
            assert second.status == 202, await second.read()
            assert (await client.get(f"/api/v1/dead-letters/{id_}", headers=ADMIN)).status == 404
        assert state.queue.depth() == 0  # not queued a second time
        assert await store.known(["ev3"]) == {"ev3"}
