"""The JSON error format of every failure, aiohttp's own and a handler's unexpected exception."""

from __future__ import annotations

import logging

from aiohttp import web

from correlator.api.app import UNHANDLED
from correlator.api.common import STATE
from correlator.event import Event
from correlator.records.store import RecordConflict


async def test_unknown_routes_and_methods_answer_json(open_api):
    r = await open_api.get("/api/v1/nothing-here")
    assert r.status == 404 and r.content_type == "application/json"
    assert "error" in await r.json()
    r = await open_api.delete("/api/v1/events")
    assert r.status == 405 and r.content_type == "application/json"
    assert "GET" in r.headers["Allow"]


async def test_a_handler_that_raises_is_a_logged_counted_json_500(open_api, caplog):
    async def broken(request: web.Request) -> web.Response:
        raise KeyError("secret internals")

    # The router is frozen once the server runs; the resource is looked up per request.
    open_api.app.router._frozen = False
    open_api.app.router.add_get("/api/v1/broken", broken)
    before = UNHANDLED._value.get()
    with caplog.at_level(logging.ERROR, logger="correlator.api.app"):
        r = await open_api.get("/api/v1/broken")
    assert r.status == 500 and r.content_type == "application/json"
    body = await r.json()
    assert body == {"error": "internal error; the daemon logged the details"}
    assert "secret internals" not in str(body)
    assert UNHANDLED._value.get() == before + 1
    assert "GET /api/v1/broken: unhandled error" in caplog.text and "KeyError" in caplog.text


async def test_a_lost_database_connection_is_a_503_to_retry_not_a_500(open_api):
    import asyncpg

    lost = [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError("connect call failed"),  # the pool reconnecting to a server that is down
    ]

    async def flaky(request: web.Request) -> web.Response:
        raise lost.pop(0)

    open_api.app.router._frozen = False
    open_api.app.router.add_get("/api/v1/flaky", flaky)
    before = UNHANDLED._value.get()
    for _ in range(3):
        r = await open_api.get("/api/v1/flaky")
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert (await r.json())["error"].startswith("the store is unavailable")
    assert UNHANDLED._value.get() == before  # not counted as a bug


def test_only_connection_failures_count_as_a_lost_store():
    import asyncpg

    from correlator.errors import store_connection_lost

    assert store_connection_lost(asyncpg.exceptions.TooManyConnectionsError("53300"))
    assert not store_connection_lost(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    fenced = asyncpg.exceptions.RaiseError("worker fenced")
    fenced.sqlstate = "CRF01"  # the cluster fence's refusal: this node cannot write until it rejoins
    assert store_connection_lost(fenced)
    assert store_connection_lost(asyncpg.exceptions.InternalClientError("cannot switch to state 21"))
    assert not store_connection_lost(KeyError("x"))
    assert not store_connection_lost(ConnectionResetError("a client went away, not the database"))


async def test_events_page_renders_a_stored_year_10000_time(open_api):
    """Stored before the door refused such times: the page still renders (nearest valid time)."""
    store = open_api.app[STATE].store
    await store.write([Event("y10k", 253402304399.0, 1.8e9, "t", "h", "x")])
    r = await open_api.get("/api/v1/events")
    assert r.status == 200
    (ev,) = (await r.json())["events"]
    assert ev["time"] == "9999-12-31T23:59:59.999999Z"


async def test_an_edit_another_process_keeps_outdating_is_a_json_409(open_api):
    async def outdated(request: web.Request) -> web.Response:
        raise RecordConflict("changes", 12, 7)

    open_api.app.router._frozen = False
    open_api.app.router.add_get("/api/v1/outdated", outdated)
    r = await open_api.get("/api/v1/outdated")
    assert r.status == 409 and r.content_type == "application/json"
    assert await r.json() == {"error": "changes record 12 was saved by another process since version 7"}
