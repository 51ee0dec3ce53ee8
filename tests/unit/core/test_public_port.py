"""The daemon's own accepting on the public port (httpworkers.PublicPort): on while no HTTP worker
is connected, off while one is, and closed for good at shutdown."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web, web_runner

from correlator.httpworkers import START_FAILURES, PublicPort, Workers


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


class _Flaky(socket.socket):
    """A real listening socket whose next `failures` duplicates fail as when descriptors run out."""

    failures = 0

    def dup(self) -> socket.socket:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().dup()


@pytest.fixture
async def served() -> AsyncIterator[tuple[_Flaky, int, web.AppRunner, PublicPort]]:
    sock = _Flaky()
    sock.bind(("127.0.0.1", 0))
    app = web.Application()
    app.router.add_get("/", _answer)
    runner = web.AppRunner(app)
    await runner.setup()
    public = PublicPort(sock, retry=(0.001, 0.01))
    try:
        await public.serve(runner)
        public.workers_connected(1)  # a worker took the port
        await _until(lambda: not runner.sites)
        yield sock, sock.getsockname()[1], runner, public
    finally:
        await public.close()
        await runner.cleanup()
        sock.close()


@pytest.mark.parametrize("failing", ["dup", "start"])
async def test_a_failed_start_is_retried_until_the_daemon_accepts(
    served: tuple[_Flaky, int, web.AppRunner, PublicPort], monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    sock, port, runner, public = served
    left = [3]
    if failing == "dup":
        sock.failures = 3
    else:
        real = web.SockSite.start

        async def start(site: web.SockSite) -> None:
            if not left[0]:
                return await real(site)
            left[0] -= 1
            await web_runner.BaseSite.start(site)  # registered, then the server fails
            raise OSError(errno.ENOMEM, "Cannot allocate memory")

        monkeypatch.setattr(web.SockSite, "start", start)
    before = START_FAILURES._value.get()
    public.workers_connected(0)  # the last worker died: the daemon must take the port back
    await _until(lambda: len(runner.sites) == 1)
    assert b"daemon" in await _get(port)
    assert START_FAILURES._value.get() == before + 3
    assert len(runner.sites) == 1  # the failed starts left nothing registered


async def test_once_shutdown_began_the_daemon_does_not_take_the_port_back(
    served: tuple[_Flaky, int, web.AppRunner, PublicPort], tmp_path: Path
) -> None:
    _, port, runner, public = served
    workers = Workers(0, b"", -1, tmp_path / "w.sock", tmp_path / "f.sock", public=public)
    await workers.stop(1)  # shutdown stops the workers first...
    public.workers_connected(0)  # ...and their channels close
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # a client arrives meanwhile
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await _until(lambda: public._applying is None or public._applying.done())
    assert not runner.sites
    await public.close()
    try:  # refused with the port's close, never answered by a daemon that is stopping
        assert b"daemon" not in await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        pass
    finally:
        writer.close()
