"""The TCP/TLS listener's connection limits on real sockets: max_connections refuses the one too
many (counted), idle connections are closed (counted) but never one that holds unwritten messages,
every accepted connection has TCP keepalive on, and a TLS handshake holds its place until it ends."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from collectors.syslog import stream
from collectors.syslog.intake import Intake
from collectors.syslog.settings import TlsListener, parse
from collectors.syslog.stream import KEEPALIVE_IDLE, StreamListener
from correlator.clock import Clock
from correlator.collector import CollectorContext
from correlator.config import Config
from correlator.event import Event
from tests.integration.test_syslog import _self_signed


class GatedEmit:
    """Takes events while the gate is open; waits (the journal is slow) while it is shut."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, events: list[Event], source: str) -> None:
        await self.gate.wait()
        self.events.extend(events)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)  # real sockets: wait for the kernel, up to the deadline
    assert predicate(), what


@pytest.fixture
async def tcp(tmp_path: Path) -> AsyncIterator[tuple[StreamListener, GatedEmit]]:
    emit = GatedEmit()
    ctx = CollectorContext(emit, lambda: None, web.Application(), Clock(), Config(), tmp_path)
    listener = StreamListener(Intake(parse({"max_connections": 2})), ctx, "tcp")
    await listener.start(("127.0.0.1", 0))
    yield listener, emit
    await listener.stop()


async def connect(listener: StreamListener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert listener.address is not None
    return await asyncio.open_connection(*listener.address)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(10):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


async def test_the_connection_beyond_max_connections_is_refused_and_counted(tcp) -> None:
    listener, emit = tcp
    refused = sample("correlator_syslog_dropped_total", transport="tcp", reason="too_many_connections")
    clients = [await connect(listener) for _ in range(2)]
    for i, (_, w) in enumerate(clients):
        w.write(b"<13>1 - h app - - - held %d\n" % i)
        await w.drain()
    await until(lambda: len(emit.events) == 2, "both held connections delivered")
    assert len(listener.connections) == 2
    reader, writer = await connect(listener)
    assert await closed_by_peer(reader)
    assert (
        sample("correlator_syslog_dropped_total", transport="tcp", reason="too_many_connections")
        == refused + 1
    )
    assert len(listener.connections) == 2
    writer.close()
    clients[0][1].close()  # a place frees up: the next connection is taken
    await until(lambda: len(listener.connections) == 1, "the closed connection left")
    _, w = await connect(listener)
    w.write(b"<13>1 - h app - - - after a place freed\n")
    await w.drain()
    await until(lambda: len(emit.events) == 3, "the new connection delivered")
    w.close()
    clients[1][1].close()


async def test_idle_connections_are_closed_but_not_one_with_unwritten_messages(tcp) -> None:
    listener, emit = tcp
    closed = sample("correlator_syslog_connections_closed_total", transport="tcp", reason="idle_timeout")
    quiet_r, quiet_w = await connect(listener)
    quiet_w.write(b"<13>1 - h app - - - then silence\n")
    await quiet_w.drain()
    await until(lambda: len(emit.events) == 1, "the quiet connection's message")
    emit.gate.clear()  # the journal is slow: the busy connection's message waits to be written
    busy_r, busy_w = await connect(listener)
    busy_w.write(b"<13>1 - h app - - - waiting for the journal\n")
    await busy_w.drain()
    await until(lambda: any(c.task for c in listener.connections), "the busy connection's emit started")
    later = time.monotonic() + 3600
    assert listener.close_idle(time.monotonic(), 3600) == 0  # nobody idle for an hour yet
    assert listener.close_idle(later, 3600) == 1
    assert listener.close_idle(later, 3600) == 0  # closing already: not closed and counted again
    assert await closed_by_peer(quiet_r)
    assert (
        sample("correlator_syslog_connections_closed_total", transport="tcp", reason="idle_timeout")
        == closed + 1
    )
    emit.gate.set()
    await until(lambda: len(emit.events) == 2, "the busy connection's message written")
    await until(lambda: all(c.task is None for c in listener.connections), "the emit finished")
    assert listener.close_idle(later, 3600) == 1  # now it is idle too
    assert await closed_by_peer(busy_r)
    quiet_w.close()
    busy_w.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_accepted_connections_have_tcp_keepalive(tmp_path: Path, transport: str) -> None:
    emit = GatedEmit()
    ctx = CollectorContext(emit, lambda: None, web.Application(), Clock(), Config(), tmp_path)
    listener = StreamListener(Intake(parse({})), ctx, transport)
    tls = None
    client_ctx = None
    if transport == "tls":
        cert, key = _self_signed(tmp_path)
        tls = TlsListener(("127.0.0.1", 0), cert, key)
        client_ctx = ssl.create_default_context(cafile=str(cert))
    await listener.start(("127.0.0.1", 0), tls)
    try:
        assert listener.address is not None
        _, w = await asyncio.open_connection(
            *listener.address, ssl=client_ctx, server_hostname="localhost" if client_ctx else None
        )
        w.write(b"<13>1 - h app - - - hello\n")
        await w.drain()
        await until(lambda: len(emit.events) == 1, "the message")
        (conn,) = listener.connections
        assert conn._transport is not None
        sock = conn._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
        w.close()
    finally:
        await listener.stop()


async def test_handshakes_hold_places_and_give_them_back_when_they_time_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "HANDSHAKE_TIMEOUT", 0.3)
    emit = GatedEmit()
    ctx = CollectorContext(emit, lambda: None, web.Application(), Clock(), Config(), tmp_path)
    listener = StreamListener(Intake(parse({"max_connections": 2})), ctx, "tls")
    cert, key = _self_signed(tmp_path)
    await listener.start(("127.0.0.1", 0), TlsListener(("127.0.0.1", 0), cert, key))
    refused = sample("correlator_syslog_dropped_total", transport="tls", reason="too_many_connections")
    failed = sample("correlator_syslog_dropped_total", transport="tls", reason="tls_handshake")
    try:
        silent = [await connect(listener) for _ in range(2)]  # never start TLS
        await until(lambda: len(listener.connections) == 2, "both counted while handshaking")
        reader, writer = await connect(listener)
        assert await closed_by_peer(reader)
        writer.close()
        assert (
            sample("correlator_syslog_dropped_total", transport="tls", reason="too_many_connections")
            == refused + 1
        )
        for r, _ in silent:
            assert await closed_by_peer(r)  # the handshake timed out
        await until(lambda: not listener.connections, "both places given back")
        assert (
            sample("correlator_syslog_dropped_total", transport="tls", reason="tls_handshake") == failed + 2
        )
        for _, w in silent:
            w.close()
        assert listener.address is not None
        client = ssl.create_default_context(cafile=str(cert))
        _, w = await asyncio.open_connection(*listener.address, ssl=client, server_hostname="localhost")
        w.write(b"<13>1 - h app - - - in a freed place\n")
        await w.drain()
        await until(lambda: len(emit.events) == 1, "the TLS sender delivered")
        assert len(listener.connections) == 1
        w.close()
        await until(lambda: not listener.connections, "its place given back on close")
    finally:
        await listener.stop()
