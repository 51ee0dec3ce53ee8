"""The daemon's own accepting on the public port (httpworkers.PublicPort): on while no HTTP worker
is connected, off while one is, and closed for good at shutdown."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from correlator.httpworkers import PublicPort


async def _answer(request: web.Request) -> web.Response:
    return web.Response(text="daemon")


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def _until(predicate: object) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_the_port_is_the_daemons_while_no_worker_is_connected_and_refused_after_close() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = web.Application()
    app.router.add_get("/", _answer)
    runner = web.AppRunner(app)
    await runner.setup()
    public = PublicPort(sock)
    try:
        await public.serve(runner)
        assert b"daemon" in await _get(port)
        public.workers_connected(1)  # a worker took the port: the daemon leaves it
        await _until(lambda: not runner.sites)
        # Still listening (the workers accept on the same socket): a connection waits in the backlog.
        waiting = await asyncio.open_connection("127.0.0.1", port)
        public.workers_connected(0)  # the last worker died: the daemon accepts again, the waiting one too
        await _until(lambda: len(runner.sites) == 1)
        waiting[1].write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"daemon" in await asyncio.wait_for(waiting[0].read(), 5)
        waiting[1].close()
        await public.close()
        with pytest.raises(ConnectionRefusedError):
            await _get(port)
        public.workers_connected(0)  # a channel closing after shutdown changes nothing
        assert not runner.sites
    finally:
        await runner.cleanup()
        sock.close()
