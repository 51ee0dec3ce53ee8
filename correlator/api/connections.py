"""HTTP connection limits: a cap on open connections, an idle deadline and a deadline for request bodies.

A connection without a request in progress (idle, or still sending its request head: a slowloris) is
closed `http.idle_timeout` after it opened or answered its last request; a body must arrive within
`http.body_timeout`; beyond `http.max_connections` the oldest idle connection makes room. aiohttp's
own keep-alive timer covers idle connections between requests only in some versions, so the idle
deadline is enforced here too. Together they keep /healthz answering under a flood of connections.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.metrics import Counter, Gauge

from correlator.api.badhttp import JsonErrorHandler
from correlator.api.common import dumps_response
from correlator.config import HttpConfig
from correlator.errors import ConfigError

log = logging.getLogger(__name__)

OPEN = Gauge("correlator_http_connections", "HTTP connections open")
CLOSED = Counter(
    "correlator_http_connections_closed_total",
    "HTTP connections closed by the connection limits: idle_timeout, idle_evicted (cap reached, the "
    "oldest idle one made room), busy (cap reached and every connection busy: 503), body_timeout (408); "
    "or by the client with a request in hand: client_gone",
    ["reason"],
)
# File descriptors the daemon needs besides HTTP connections (databases, journal, MQTT, SNMP, logs).
FD_RESERVE = 128

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTimeout(TimeoutError):
    """Set on a request's payload when its body is late; a TimeoutError, so aiohttp's lingering read
    after the 408 ends quietly instead of logging a traceback."""


@dataclass
class ConnectionLimits:
    max_connections: int
    body_timeout: float
    idle_timeout: float
    # Connections whose request is being handled; the others are idle or still sending a request head,
    # and the oldest of them is what a new connection displaces once the cap is reached.
    busy: set[object] = field(default_factory=set)
    # When each connection's last request was answered (loop time): its idle deadline counts from there.
    answered: dict[object, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, http: HttpConfig) -> ConnectionLimits:
        if http.max_connections < 1:
            raise ConfigError(
                f"'http.max_connections': expected a whole number >= 1, got {http.max_connections}"
            )
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < http.max_connections + FD_RESERVE:
            log.warning(
                "http.max_connections is %d but the open-files limit is %d: raise the limit (ulimit -n, "
                "LimitNOFILE=) above %d or lower http.max_connections",
                http.max_connections,
                soft,
                http.max_connections + FD_RESERVE,
            )
        return cls(http.max_connections, http.body_timeout, http.idle_timeout)

    def middleware(self) -> Middleware:
        @web.middleware
        async def limit_request(request: web.Request, handler: Handler) -> web.StreamResponse:
            proto = request.protocol
            self.busy.add(proto)
            loop = asyncio.get_running_loop()
            timer = None
            if request.body_exists and not request.content.is_eof():
                timer = loop.call_later(self.body_timeout, _expire, request.content)
            try:
                return await handler(request)
            except BodyTimeout:
                CLOSED.labels("body_timeout").inc()
                resp = dumps_response(
                    408, {"error": f"request body not received within {self.body_timeout:g}s"}
                )
                resp.force_close()
                return resp
            finally:
                self.busy.discard(proto)
                self.answered[proto] = loop.time()
                if timer is not None:
                    timer.cancel()

        return limit_request


LIMITS = web.AppKey("connection_limits", ConnectionLimits)


def _expire(payload: Any) -> None:
    if not payload.is_eof():
        payload.set_exception(BodyTimeout())


class LimitedServer(web.Server):
    """aiohttp's server with a cap on open connections and an idle deadline for each, whose
    connections answer requests that are not valid HTTP in JSON (correlator/api/badhttp.py)."""

    def __init__(self, limits: ConnectionLimits, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._timer_loop = asyncio.get_running_loop()
        self._open: dict[Any, float] = {}  # handler -> loop time it connected; the oldest first
        # One sweep for all connections rather than a timer each: a flood of connections then costs
        # one dict entry apiece, and the sweep a pass over at most max_connections entries.
        self._every = max(0.05, min(1.0, limits.idle_timeout / 4))
        self._sweeper = self._timer_loop.call_later(self._every, self._sweep)

    def __call__(self) -> JsonErrorHandler:
        # What aiohttp's Server.__call__ builds, with the handler that answers parse errors in JSON.
        return JsonErrorHandler(self, loop=self._timer_loop, **self._kwargs)

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = self._timer_loop.time()
        if len(self._open) > self._limits.max_connections:
            self._make_room(handler, transport)
        OPEN.set(len(self._open))

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._open.pop(handler, None)
        self._limits.busy.discard(handler)
        self._limits.answered.pop(handler, None)
        OPEN.set(len(self._open))

    def pre_shutdown(self) -> None:
        self._sweeper.cancel()
        super().pre_shutdown()

    def _sweep(self) -> None:
        deadline = self._timer_loop.time() - self._limits.idle_timeout
        busy, answered = self._limits.busy, self._limits.answered
        late = [
            h
            for h, opened in self._open.items()
            if h not in busy and max(opened, answered.get(h, opened)) < deadline
        ]
        for h in late:
            CLOSED.labels("idle_timeout").inc()
            self._open.pop(h)
            h.force_close()
        if late:
            OPEN.set(len(self._open))
        self._sweeper = self._timer_loop.call_later(self._every, self._sweep)

    def _make_room(self, new: Any, transport: asyncio.Transport) -> None:
        busy = self._limits.busy
        victim = next((h for h in self._open if h is not new and h not in busy), None)
        if victim is not None:
            # An idle or half-sent connection costs its owner nothing to reopen; a health check or an
            # ingest request waiting for a file descriptor costs the NOC its view.
            CLOSED.labels("idle_evicted").inc()
            self._open.pop(victim)
            victim.force_close()
            return
        CLOSED.labels("busy").inc()
        self._open.pop(new)
        transport.write(_BUSY)
        new.force_close()  # closes after the write is flushed


class LimitedRunner(web.AppRunner):
    """AppRunner whose server is a LimitedServer (`_make_server` is aiohttp's runner extension point)."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup hooks, freezes it, merges handler args
        # The same server with the same arguments, plus the cap (tests/integration/test_http_limits.py
        # notices if aiohttp renames them).
        return LimitedServer(
            self._limits,
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **plain._kwargs,
        )


_BUSY_BODY = orjson.dumps({"error": "too many open connections, retry later"})
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)
