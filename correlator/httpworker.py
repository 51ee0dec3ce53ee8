"""An HTTP worker process (`http.workers`): webhook ingest on a second core.

Started by the daemon (correlator/httpworkers.py) as `python -m correlator.httpworker`, with the
daemon's listening socket inherited and its settings on stdin (never argv: they hold the ingest
tokens). While any worker runs, only workers accept connections on that socket. A worker serves
the webhook routes itself: parse, convert, the door, serialisation for the journal. Each batch
then goes, already serialised, to the daemon as a frame on a persistent unix-socket stream
(correlator/workerlink.py); the daemon appends it to the journal and answers once it is durable,
and only then does the worker answer its client 202. Every other request is passed through to the
daemon over HTTP on its unix socket, unchanged but for a compressed body, which goes on decoded.
Counters are sent to the daemon every second, so /metrics counts what the workers refused too. The worker exits when its stdin closes (the
daemon stopped, even by SIGKILL) or on SIGTERM after finishing the requests in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client.registry import REGISTRY

from correlator import deadletter, door, logs
from correlator.api.app import PASSED_ON, json_errors
from correlator.api.connections import ConnectionLimits, LimitedRunner
from correlator.errors import ShuttingDown
from correlator.event import Event
from correlator.ingest import serialise
from correlator.workerlink import LinkClient, PushedBack

log = logging.getLogger(__name__)

WORKER_HEADER = "X-Correlator-Worker"  # carries the per-start secret
# Not passed on to the daemon: connection-level headers, and the secret that marks a worker's call.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    WORKER_HEADER.lower(),
}
# Not passed on with a request's body either: aiohttp has decoded the body the worker read.
_DECODED = {"content-encoding"}
METRICS_EVERY = 1.0
CONNECTIONS = 32  # to the daemon, per worker


class Forwarder:
    """The worker's side of the channels to the daemon: batches as frames (correlator/workerlink.py),
    everything else as HTTP over the daemon's unix socket."""

    def __init__(self, path: str, link: str, secret: str, idle_timeout: float = 15.0) -> None:
        self._path = path
        self.link = LinkClient(link, secret)
        # Below the daemon's idle deadline, so a kept-alive connection is never reused just as the
        # daemon closes it (which would turn a good batch into a 503).
        self._keepalive = max(0.5, idle_timeout / 3)
        self._headers = {WORKER_HEADER: secret}
        self._session: aiohttp.ClientSession | None = None
        self._full_until = 0.0
        self._sent: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Bounded: a burst waits here rather than filling the daemon's connection cap.
                connector=aiohttp.UnixConnector(
                    self._path, limit=CONNECTIONS, keepalive_timeout=self._keepalive
                ),
                auto_decompress=False,
                # The session is shared by every client of this worker: a cookie the daemon sets
                # for one (a console sign-in) must never be sent on behalf of another.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        await self.link.close()
        if self._session is not None:
            await self._session.close()

    def retry_after(self) -> float | None:
        """While the daemon said full: the seconds left, so a worker refuses before parsing."""
        left = self._full_until - asyncio.get_running_loop().time()
        return left if left > 0 else None

    async def emit(self, events: list[Event], source: str) -> None:
        """Durable on return (the daemon answered after its fsync); raises QueueFull or ShuttingDown."""
        if not events:
            return
        events, payload = await serialise(events, self._set_aside_unserialisable)
        if not events:
            return
        try:
            await self.link.put(payload, len(events), source)
        except PushedBack as e:
            self._full_until = asyncio.get_running_loop().time() + e.retry_after
            raise

    async def _set_aside_unserialisable(self, bad: list[tuple[Event, Exception]]) -> None:
        """Dead-lettered by the daemon, which owns the store; raises when not (nothing acknowledged)."""
        items = [deadletter.of_event(ev, deadletter.UNSERIALISABLE, e) for ev, e in bad]
        body = orjson.dumps([_dead_letter_dict(d) for d in items])
        status, _ = await self._call("/internal/v1/dead-letters", body, self._headers)
        if status != 202:
            raise ShuttingDown(f"the daemon answered {status} to dead letters")

    async def _call(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            async with self.session.post(f"http://daemon{path}", data=body, headers=headers) as resp:
                raw = await resp.read()
                return resp.status, orjson.loads(raw) if raw else {}
        except (aiohttp.ClientError, OSError, orjson.JSONDecodeError) as e:
            # The daemon is stopping or gone: nothing was acknowledged, the client retries.
            log.warning("http worker: the daemon did not answer %s: %s", path, e)
            return 0, {}

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Any route but ingest: the daemon answers it, through this worker."""
        request[PASSED_ON] = True  # its 4xx is the daemon's to count, not this worker's too
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP | _DECODED]
        try:
            async with self.session.request(
                request.method,
                f"http://daemon{request.raw_path}",
                data=body,
                headers=headers,
                allow_redirects=False,
                # The answer goes back as the daemon encoded it: for the client's Accept-Encoding,
                # never for the one aiohttp would add (a compressed /metrics for a plain curl).
                skip_auto_headers=("Accept-Encoding",),
            ) as resp:
                raw = await resp.read()
                out = web.Response(status=resp.status, body=raw)
                for k, v in resp.headers.items():
                    if k.lower() not in _HOP:
                        out.headers.add(k, v)
                return out
        except (aiohttp.ClientError, OSError):
            return web.Response(
                status=503,
                body=orjson.dumps({"error": "the daemon is not answering, retry later"}),
                content_type="application/json",
                headers={"Retry-After": "1"},
            )

    async def send_metrics(self) -> None:
        """Counter increments since the last call, by metric family and labels."""
        deltas: list[tuple[str, dict[str, str], float]] = []
        for family in REGISTRY.collect():
            if family.type != "counter":
                continue
            for s in family.samples:
                if not s.name.endswith("_total"):
                    continue
                key = (s.name, tuple(sorted(s.labels.items())))
                delta = s.value - self._sent.get(key, 0.0)
                if delta > 0:
                    deltas.append((family.name, s.labels, delta))
                    self._sent[key] = s.value
        if deltas:
            status, _ = await self._call("/internal/v1/metrics", orjson.dumps(deltas), self._headers)
            if status != 202:  # the daemon did not count them: send them again next time
                for name, labels, delta in deltas:
                    key = (name + "_total", tuple(sorted(labels.items())))
                    self._sent[key] -= delta


def _dead_letter_dict(d: deadletter.DeadLetter) -> dict[str, Any]:
    return {
        "reason": d.reason,
        "source": d.source,
        "event_id": d.event_id,
        "error": d.error,
        "raw": d.raw,
        "at": d.at,
    }


def build_app(spec: Mapping[str, Any], forwarder: Forwarder, limits: ConnectionLimits) -> web.Application:
    from collectors.webhook import create as create_webhook
    from correlator.collector import CollectorContext

    app = web.Application(
        client_max_size=spec["max_body_bytes"], middlewares=[limits.middleware(), json_errors]
    )
    ctx = CollectorContext(forwarder.emit, forwarder.retry_after, app, None, None, None)  # type: ignore[arg-type]
    create_webhook(spec["webhook"] or {}, ctx)
    app.router.add_route("*", "/{tail:.*}", forwarder.proxy)
    return app


async def serve(spec: Mapping[str, Any]) -> None:
    door.configure(door.TimePolicy(spec["max_future"], spec["max_past"]))
    forwarder = Forwarder(spec["socket"], spec["link"], spec["secret"], spec["idle_timeout"])
    await forwarder.link.connect()  # before accepting: the daemon stops accepting once we are here
    limits = ConnectionLimits(spec["max_connections"], spec["body_timeout"], spec["idle_timeout"])
    app = build_app(spec, forwarder, limits)
    runner = LimitedRunner(
        app,
        limits,
        access_log=None,
        shutdown_timeout=spec["shutdown_timeout"],
        keepalive_timeout=spec["idle_timeout"],
    )
    await runner.setup()
    sock = socket.socket(fileno=spec["fd"])
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # a terminal's ^C goes to the daemon, which stops us
    loop.add_reader(sys.stdin.fileno(), _on_stdin, stop)
    log.info("http worker %d serving", os.getpid())
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), METRICS_EVERY)
            await forwarder.send_metrics()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await runner.cleanup()  # stops accepting, lets the requests in hand finish
        await forwarder.send_metrics()
        await forwarder.close()


def _on_stdin(stop: asyncio.Event) -> None:
    if not os.read(sys.stdin.fileno(), 4096):  # EOF: the daemon is gone
        stop.set()


def main() -> int:
    spec = orjson.loads(sys.stdin.buffer.readline())
    logs.setup(spec["log_level"], spec["log_format"])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(spec))
        return 0
    uvloop.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
