"""Connection limits on a real aiohttp server over loopback sockets: the cap, idle eviction, busy 503,
the body deadline (408). Requests are held in a handler until the test releases them, so what is
busy and what is idle is known exactly, without sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from correlator.api.connections import LIMITS, ConnectionLimits, LimitedRunner
from tests.support.daemon import free_port

CAP = 5


class Server:
    def __init__(self, port: int, limits: ConnectionLimits, release: asyncio.Event) -> None:
        self.port, self.limits, self.release = port, limits, release

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        reader, writer = await self.connect()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return await answer(reader, writer)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
    """(status, body) of the one response on the connection, which the server then closes."""
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"held": True})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await request.read())})

    limits = ConnectionLimits(max_connections=CAP, body_timeout=0.5, idle_timeout=0.5)
    app = web.Application(middlewares=[limits.middleware()])
    app[LIMITS] = limits
    app.router.add_get("/hold", hold)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/echo", echo)
    runner = LimitedRunner(app, limits, keepalive_timeout=3600)  # the idle deadline is the server's own
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Server(port, limits, release)
    release.set()
    await runner.cleanup()


async def until(predicate, what: str) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.005)  # yield to the server running in this loop
    raise AssertionError(f"timed out waiting for {what}")


async def test_idle_connections_make_room_for_a_new_one(server: Server):
    idle = [await server.connect() for _ in range(40)]  # 8x the cap, never sending a byte
    half = await server.connect()
    half[1].write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # a head that never ends
    assert await server.get("/healthz") == (200, b'{"status": "ok"}')
    # The oldest idle connections were closed to make room: their reads end.
    for reader, writer in idle[:30]:
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    for _, writer in [*idle[30:], half]:
        writer.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503_json(server: Server):
    held = []
    for _ in range(CAP):
        reader, writer = await server.connect()
        writer.write(b"GET /hold HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        held.append((reader, writer))
    await until(lambda: len(server.limits.busy) == CAP, f"{CAP} requests in progress")
    reader, writer = await server.connect()
    status, body = await answer(reader, writer)
    assert status == 503 and orjson.loads(body) == {"error": "too many open connections, retry later"}
    server.release.set()
    for reader, writer in held:  # the busy ones were not disturbed
        assert await answer(reader, writer) == (200, b'{"held": true}')
    assert await server.get("/healthz") == (200, b'{"status": "ok"}')


async def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(server: Server):
    reader, writer = await server.connect()
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    status, body = await answer(reader, writer)
    assert status == 408 and orjson.loads(body) == {"error": "request body not received within 0.5s"}
    assert not server.limits.busy
    # A body that arrives in time is read as usual.
    reader, writer = await server.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\n")
    await writer.drain()
    writer.write(b"abcd")
    assert await answer(reader, writer) == (200, b'{"bytes": 4}')


async def test_idle_and_half_sent_connections_are_closed_after_idle_timeout(server: Server):
    silent = await server.connect()
    half = await server.connect()
    half[1].write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    kept = await server.connect()  # keep-alive: answered once, then idle
    kept[1].write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await kept[0].readuntil(b'{"status": "ok"}')).startswith(b"HTTP/1.1 200")
    for reader, writer in (silent, half, kept):
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


def test_max_connections_must_be_at_least_one():
    from correlator.config import HttpConfig
    from correlator.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'http.max_connections': expected a whole number >= 1"):
        ConnectionLimits.from_config(HttpConfig(max_connections=0))
