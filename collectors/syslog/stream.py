"""The TCP and TLS listeners (RFC 6587, RFC 5425): framed streams with backpressure, never loss.

Each connection parses what it reads into a batch that one task per connection hands to the queue.
While a batch is full or the queue answers QueueFull, the connection stops reading: the kernel's
buffers fill and the sender's TCP stack slows it down. A frame once read is kept until it is durable.
A connection holds a `max_connections` place from its accept (a TLS one while it handshakes too), so
connections that never finish a handshake cannot use up the daemon's file descriptors. TCP keepalive
finds peers that vanished without a FIN, so a dead peer cannot hold a place forever; `idle_timeout`
(off by default: docs/collectors/syslog.md) also closes live ones that sent nothing for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from asyncio import sslproto
from collections.abc import Callable
from typing import cast

from collectors.syslog.framing import Deframer
from collectors.syslog.intake import (
    BACKPRESSURE,
    CLOSED,
    CONNECTIONS,
    DROPPED,
    MESSAGES,
    NOT_ALLOWED,
    SHUTTING_DOWN,
    TOO_LARGE,
    Intake,
    drop,
    log,
)
from collectors.syslog.mapping import SOURCE
from collectors.syslog.settings import TlsListener
from correlator.collector import CollectorContext
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event

TOO_MANY = "too_many_connections"
TLS_HANDSHAKE = "tls_handshake"
# A handshake is a few round trips; a place held by a peer that never starts one is a place a
# device cannot have, so the wait is short.
HANDSHAKE_TIMEOUT = 10  # seconds
IDLE = "idle_timeout"
# A peer gone without a FIN (powered off, a NAT or firewall that forgot the flow) is found after
# 5 min of silence plus 4 unanswered probes 30 s apart, not by the kernel's 2 h default.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 300, 30, 4


class StreamListener:
    """One listening socket (transport "tcp" or "tls") and its connections."""

    def __init__(self, intake: Intake, ctx: CollectorContext, transport: str) -> None:
        self.intake = intake
        self.ctx = ctx
        self.transport = transport
        self.connections: set[Connection] = set()
        self.messages = MESSAGES.labels(transport)
        self.gauge = CONNECTIONS.labels(transport)
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.handshakes: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None
        self.closed_idle = CLOSED.labels(transport, IDLE)

    async def start(self, listen: tuple[str, int], tls: TlsListener | None = None) -> None:
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = lambda: Connection(self)  # noqa: E731
        if tls is not None:
            context = _server_context(tls)
            # TlsHandshake installs TLS itself (not create_server(ssl=...)) so that a refused
            # handshake is counted and logged.
            factory = lambda: TlsHandshake(self, context)  # noqa: E731
        self._server = await loop.create_server(factory, listen[0], listen[1], reuse_address=True)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("syslog: listening on %s %s:%d", self.transport, *self.address)
        idle = self.intake.settings.idle_timeout
        if idle is not None:
            self._reaper = asyncio.create_task(self._reap(idle), name=f"syslog-{self.transport}-idle")

    async def _reap(self, idle: float) -> None:
        # One sweep a quarter of the timeout: a connection closes between 1 and 1.25 times it after
        # its last byte, and reading a byte costs a clock read, not a timer reset.
        while True:
            await asyncio.sleep(idle / 4)
            self.close_idle(time.monotonic(), idle)

    def close_idle(self, now: float, idle: float) -> int:
        """Close the connections that received nothing since `now - idle` and hold no unwritten
        message; returns how many."""
        idle_now = [c for c in self.connections if c.idle(now, idle)]
        for c in idle_now:
            c.close()
        if idle_now:
            self.closed_idle.inc(len(idle_now))
            log.info(
                "syslog: closed %d idle %s connections (nothing received for %gs), from %s",
                len(idle_now),
                self.transport,
                idle,
                ", ".join(sorted({c.sender for c in idle_now})[:10]),
            )
        return len(idle_now)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for h in list(self.handshakes):
            h.cancel()
        open_now = list(self.connections)
        for c in open_now:
            c.close()
        await asyncio.sleep(0)  # connection_lost runs: a last frame without LF joins its batch
        tasks = [c.task for c in open_now if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def admit(self, conn: Connection, transport: asyncio.Transport, sender: str) -> bool:
        """Give a new connection a place, or refuse it (closed, counted) when its sender is not allowed
        or every place is taken."""
        if not self.intake.allowed(sender):
            drop(self.transport, NOT_ALLOWED, sender, "connection refused: not in allowed_senders")
            transport.abort()
            return False
        if len(self.connections) >= self.intake.settings.max_connections:
            drop(self.transport, TOO_MANY, sender, "connection refused: max_connections reached")
            transport.abort()
            return False
        self.connections.add(conn)
        self.gauge.inc()
        _keepalive(transport)
        return True

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.gauge.dec()

    def healthy(self) -> bool:
        return self._server is not None and self._server.is_serving()


def _server_context(tls: TlsListener) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED  # RFC 5425 mutual authentication
    return ctx


class TlsHandshake(asyncio.Protocol):
    """Accepts a TCP connection and puts TLS between it and a Connection, counting failed handshakes.

    What `create_server(ssl=...)` does, except that the handshake's outcome is observed: asyncio
    reports a refused handshake nowhere a NOC would look. The TLS layer is installed before the
    transport's first read, so no byte of the ClientHello can reach the wrong protocol.
    """

    def __init__(self, listener: StreamListener, context: ssl.SSLContext) -> None:
        self._l = listener
        self._context = context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        peer = raw.get_extra_info("peername")
        conn = Connection(self._l)
        conn.sender = str(peer[0]) if peer else "-"
        conn.handshaking = raw
        # The place is taken before the handshake: one that never ends holds a file descriptor too.
        if not self._l.admit(conn, raw, conn.sender):
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        tls = sslproto.SSLProtocol(
            loop, conn, self._context, waiter, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        )  # fmt: skip
        raw.set_protocol(tls)
        tls.connection_made(raw)
        task = asyncio.create_task(self._outcome(waiter, conn), name="syslog-tls-handshake")
        self._l.handshakes.add(task)
        task.add_done_callback(self._l.handshakes.discard)

    async def _outcome(self, waiter: asyncio.Future[None], conn: Connection) -> None:
        try:
            await waiter
        except (OSError, ssl.SSLError, TimeoutError) as e:
            drop(self._l.transport, TLS_HANDSHAKE, conn.sender, f"TLS handshake failed: {e}")
        finally:
            # A connection whose handshake did not succeed (failed, timed out, closed, or the
            # listener stopped) never reaches Connection.connection_made: its place is given back here.
            if conn.handshaking is not None:
                conn.handshaking = None
                self._l.release(conn)


class Connection(asyncio.Protocol):
    def __init__(self, listener: StreamListener) -> None:
        self._l = listener
        self._t = listener.transport
        self._transport: asyncio.Transport | None = None
        self.sender = "-"
        self.last_read = time.monotonic()
        self._events: list[Event] = []
        self._paused = False
        self._closed = False
        self._max_batch = listener.intake.settings.max_batch_events
        self._deframer = Deframer(listener.intake.settings.max_message_bytes, self._frame, self._oversize)
        self.task: asyncio.Task[None] | None = None
        # TLS: the TCP transport while the handshake runs (the place is held already), else None.
        self.handshaking: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses of it
        self._transport = transport
        if self.handshaking is not None:  # TLS, handshake done: admitted at the accept
            self.handshaking = None
            return
        peer = transport.get_extra_info("peername")
        self.sender = str(peer[0]) if peer else "-"
        self._l.admit(self, transport, self.sender)

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        self._deframer.feed(data)
        self._kick()

    def eof_received(self) -> bool | None:
        self._deframer.finish()
        self._kick()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._deframer.finish()  # a TLS peer may close without an EOF of its own
        self._kick()
        self._l.release(self)
        # Frames already read stay in self._events: the emit task finishes them.

    def close(self) -> None:
        if self.handshaking is not None:
            self.handshaking.abort()  # nothing read yet: nothing to finish
        elif self._transport is not None and not self._closed:
            self._transport.close()

    def idle(self, now: float, idle: float) -> bool:
        # A connection paused by backpressure reads nothing because of us: it is not idle.
        if self._closed or self._transport is None or self._transport.is_closing():
            return False  # already closing (a TLS close waits for the peer): closed and counted once
        return now - self.last_read >= idle and not self._events and self.task is None

    # -- frames --

    def _frame(self, frame: bytes) -> None:
        ev = self._l.intake.event(frame, self.sender, time.time(), self._t)
        if ev is not None:
            self._events.append(ev)

    def _oversize(self, n: int) -> None:
        drop(self._t, TOO_LARGE, self.sender, f"frame of {n} bytes skipped")

    def _kick(self) -> None:
        if len(self._events) >= self._max_batch:
            self._pause()  # backpressure: the sender waits in its TCP stack
        if self._events and self.task is None:
            self.task = asyncio.create_task(self._drain(), name=f"syslog-{self._t}-emit")

    def _pause(self) -> None:
        if not self._paused and not self._closed and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and not self._closed and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    async def _drain(self) -> None:
        try:
            while self._events:
                batch = self._events[: self._max_batch]
                try:
                    await self._l.ctx.emit(batch, SOURCE)
                except QueueFull as e:
                    BACKPRESSURE.labels(self._t).inc()
                    self._pause()
                    await asyncio.sleep(self._l.ctx.retry_after() or e.retry_after)
                    continue
                except ShuttingDown:
                    drop(self._t, SHUTTING_DOWN, self.sender, "the daemon is stopping", len(self._events))
                    self._events.clear()
                    return
                except Exception:
                    DROPPED.labels(self._t, "emit_failed").inc(len(batch))
                    log.exception("syslog: emitting %d events failed", len(batch))
                    del self._events[: len(batch)]
                    continue
                del self._events[: len(batch)]
                self._l.messages.inc(len(batch))
                if len(self._events) < self._max_batch:
                    self._resume()
        finally:
            self.task = None


def _keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")  # TLS passes it through from the TCP transport
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # the TCP_KEEP* options are Linux's
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
