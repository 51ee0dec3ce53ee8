"""The daemon's side of HTTP workers (`http.workers`): start them, replace the ones that die, and
take their batches into the journal.

Workers (correlator/httpworker.py) accept on the daemon's own listening socket and call back over a
unix socket in the data directory (mode 0600) on which the daemon serves its application too. The
internal routes below answer only on that socket and only to a caller holding the secret handed
to the workers on their stdin; from the TCP port they are 404 like any unknown path.
docs/architecture.md "HTTP workers".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import REGISTRY, Counter, Gauge

from correlator import deadletter
from correlator.api.common import STATE, dumps_response
from correlator.config import Config
from correlator.errors import ConfigError, QueueFull, ShuttingDown
from correlator.httpworker import WORKER_HEADER

log = logging.getLogger(__name__)

SOCKET_FILE = "http-workers.sock"
SECRET = web.AppKey("http_workers_secret", str)
RESTARTS = Counter(
    "correlator_http_worker_restarts_total", "HTTP worker processes that ended unexpectedly and were replaced"
)
RUNNING = Gauge("correlator_http_workers", "HTTP worker processes running")
MAX_BACKOFF = 10.0


def add_routes(app: web.Application) -> str:
    """The internal routes (before the app starts); returns the secret workers must send."""
    secret = secrets.token_hex(32)
    app[SECRET] = secret
    app.router.add_post("/internal/v1/journal", _journal)
    app.router.add_post("/internal/v1/dead-letters", _dead_letters)
    app.router.add_post("/internal/v1/metrics", _metrics)
    return secret


def _from_worker(request: web.Request) -> bool:
    on_unix = isinstance(request.transport.get_extra_info("sockname") if request.transport else None, str)
    sent = request.headers.get(WORKER_HEADER, "").encode("utf-8", "surrogateescape")
    return on_unix and hmac.compare_digest(sent, request.app[SECRET].encode())


_NOT_FOUND = {"error": "Not Found"}


async def _journal(request: web.Request) -> web.Response:
    """A worker's batch, serialised for the journal: 202 once durable, 503 on push-back."""
    if not _from_worker(request):
        return dumps_response(404, _NOT_FOUND)
    source = request.headers.get("X-Source", "")
    count = int(request.headers.get("X-Count", "0"))
    payload = await request.content.read()  # not read(): a batch may exceed http.max_body_bytes
    ingest = request.app[STATE].ingest
    assert ingest is not None
    try:
        await ingest.put_serialised(payload, count, source)
    except QueueFull as e:
        body = {"error": e.answer, "reason": e.reason, "retry_after": max(1, math.ceil(e.retry_after))}
        return dumps_response(503, body)
    except ShuttingDown:
        return dumps_response(503, {"error": "shutting down, retry later", "reason": "shutting_down"})
    return dumps_response(202, {"accepted": count})


async def _dead_letters(request: web.Request) -> web.Response:
    if not _from_worker(request):
        return dumps_response(404, _NOT_FOUND)
    items = [deadletter.DeadLetter(**d) for d in orjson.loads(await request.content.read())]
    store = request.app[STATE].store
    await deadletter.set_aside(store, items)  # raises (500) when it cannot: the worker acknowledges nothing
    return dumps_response(202, {"accepted": len(items)})


async def _metrics(request: web.Request) -> web.Response:
    """Counter increments from a worker, added to the daemon's counters of the same name."""
    if not _from_worker(request):
        return dumps_response(404, _NOT_FOUND)
    for name, labels, delta in orjson.loads(await request.content.read()):
        # prometheus-client has no public lookup by name; the registry's map is stable across 0.x.
        counter = REGISTRY._names_to_collectors.get(name)
        if not isinstance(counter, Counter) or delta <= 0:
            continue
        try:
            (counter.labels(**labels) if labels else counter).inc(delta)
        except ValueError:  # labels of another version of the metric: skip rather than fail the rest
            log.warning("http worker sent counter %s with unknown labels %s", name, sorted(labels))
    return dumps_response(202, {})


@dataclass
class Workers:
    """N worker processes, each replaced when it ends while the daemon runs."""

    count: int
    spec: bytes  # one JSON line for each worker's stdin
    fd: int
    socket: Path  # the daemon's side of the channel, removed when the workers stop
    procs: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: bool = False

    async def start(self) -> None:
        for slot in range(self.count):
            self.tasks.append(asyncio.create_task(self._keep(slot), name=f"http-worker-{slot}"))

    async def _spawn(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "correlator.httpworker",
            stdin=asyncio.subprocess.PIPE,
            pass_fds=(self.fd,),
        )
        assert proc.stdin is not None
        proc.stdin.write(self.spec)  # the pipe stays open: its end tells the worker the daemon is gone
        await proc.stdin.drain()
        return proc

    async def _keep(self, slot: int) -> None:
        backoff = 0.5
        while not self.stopping:
            started = asyncio.get_running_loop().time()
            proc = await self._spawn()
            self.procs[slot] = proc
            RUNNING.set(len(self.procs))
            log.info("http worker %d started (pid %d)", slot, proc.pid)
            code = await proc.wait()
            del self.procs[slot]
            RUNNING.set(len(self.procs))
            if self.stopping:
                return
            RESTARTS.inc()
            # A worker that dies at once (a broken install) is retried slowly, not in a tight loop.
            lived = asyncio.get_running_loop().time() - started
            backoff = 0.5 if lived > 30 else min(MAX_BACKOFF, backoff * 2)
            log.error("http worker %d (pid %d) ended with %s; replacing it", slot, proc.pid, code)
            await asyncio.sleep(backoff)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    async def stop(self, grace: float) -> None:
        """SIGTERM: each stops accepting and finishes the requests in hand (the daemon still takes
        their batches); after `grace` seconds, SIGKILL."""
        self.stopping = True
        procs = list(self.procs.values())
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        waits = [asyncio.create_task(p.wait()) for p in procs]
        if waits:
            _, late = await asyncio.wait(waits, timeout=grace)
            for p in procs:
                if p.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            if late:
                await asyncio.wait(late)
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def socket_path(config: Config) -> Path:
    return config.storage.data_dir / SOCKET_FILE


def unix_socket(path: Path) -> socket.socket:
    """Bound with mode 0600 before listen(): no other user can call the internal routes."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    return sock


def enabled(config: Config) -> bool:
    """Workers take webhook ingest: without the webhook collector there is nothing for them to do."""
    webhook = config.collectors.get("webhook", False)
    on = webhook is None or (isinstance(webhook, dict) and webhook.get("enabled", True) is True)
    return config.http.workers > 0 and "webhook" in config.collectors and on


def prepare(config: Config, app: web.Application) -> str | None:
    """Before the app starts: the internal routes when workers are on; their secret, else None."""
    if config.http.workers < 0:
        raise ConfigError(f"'http.workers': expected 0 or more, got {config.http.workers}")
    return add_routes(app) if enabled(config) else None


async def start(
    config: Config, runner: web.AppRunner, listen: socket.socket, secret: str | None
) -> Workers | None:
    """After the TCP site: serve the app on the unix socket too, then start the workers."""
    if secret is None:
        return None
    site = web.SockSite(runner, unix_socket(socket_path(config)))
    await site.start()
    workers = make(config, listen, secret)
    await workers.start()
    log.info("%d http workers take webhook ingest on the same port", workers.count)
    return workers


def make(config: Config, listen: socket.socket, secret: str) -> Workers:
    http, ingest, logging_ = config.http, config.ingest, config.logging
    spec = {
        "fd": listen.fileno(),
        "socket": str(socket_path(config).resolve()),
        "secret": secret,
        "max_body_bytes": http.max_body_bytes,
        "max_connections": http.max_connections,
        "body_timeout": http.body_timeout,
        "idle_timeout": http.idle_timeout,
        "shutdown_timeout": config.shutdown_grace / 2,
        "max_future": ingest.max_future,
        "max_past": ingest.max_past,
        "webhook": {k: v for k, v in (config.collectors.get("webhook") or {}).items() if k != "enabled"},
        "log_level": logging_.level,
        "log_format": logging_.format,
    }
    return Workers(http.workers, orjson.dumps(spec) + b"\n", listen.fileno(), socket_path(config))
