"""The daemon's side of HTTP workers (`http.workers`): start them, replace the ones that die, take
their batches into the journal, and accept on the public port only while none is connected.

Workers (correlator/httpworker.py) accept on the daemon's own listening socket. Their batches come
as frames on a unix socket in the data directory (correlator/workerlink.py); every other request
comes as HTTP on a second one, on which the daemon serves its application too. Both are mode
0600. The internal routes below answer only on that socket and only to a caller holding the
secret handed to the workers on their stdin; from the TCP port they are 404 like any unknown path.
docs/architecture.md "HTTP workers".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client.metrics import Counter, Gauge
from prometheus_client.registry import REGISTRY

from correlator import deadletter
from correlator.api.common import STATE, dumps_response
from correlator.collector import enabled_section
from correlator.config import Config
from correlator.errors import ConfigError
from correlator.httpworker import WORKER_HEADER
from correlator.workerlink import LinkServer

log = logging.getLogger(__name__)

SOCKET_FILE = "http-workers.sock"
LINK_FILE = "http-frames.sock"
SECRET = web.AppKey("http_workers_secret", str)
RESTARTS = Counter(
    "correlator_http_worker_restarts_total", "HTTP worker processes that ended unexpectedly and were replaced"
)
RUNNING = Gauge("correlator_http_workers", "HTTP worker processes running")
CONNECTED = Gauge(
    "correlator_http_workers_connected",
    "HTTP workers connected to the daemon's channel; while any is, only workers accept on the port",
)
START_FAILURES = Counter(
    "correlator_http_public_port_start_failures_total",
    "Failed attempts of the daemon to accept on the public port again (retried with a backoff)",
)
MAX_BACKOFF = 10.0


def add_routes(app: web.Application) -> str:
    """The internal routes (before the app starts); returns the secret workers must send."""
    secret = secrets.token_hex(32)
    app[SECRET] = secret
    app.router.add_post("/internal/v1/dead-letters", _dead_letters)
    app.router.add_post("/internal/v1/metrics", _metrics)
    return secret


def _from_worker(request: web.Request) -> bool:
    on_unix = isinstance(request.transport.get_extra_info("sockname") if request.transport else None, str)
    sent = request.headers.get(WORKER_HEADER, "").encode("utf-8", "surrogateescape")
    return on_unix and hmac.compare_digest(sent, request.app[SECRET].encode())


_NOT_FOUND = {"error": "Not Found"}


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


class PublicPort:
    """The daemon's own accepting on the public socket: on while no worker is connected.

    With workers connected the daemon leaves every new connection to them (its event loop is the
    ceiling, the workers' are not) and closes its own kept-alive public connections after their
    next answer, so clients come back through the workers. While no worker is connected (all
    died, or none has started yet) the daemon accepts again at once: the port never goes dead.
    Each start serves a duplicate of the socket, since stopping a server closes the descriptor it
    served while the workers need the listening socket kept open. A start that fails (no
    descriptor left) is retried with a backoff; once shutdown began the port is held as it is.
    """

    def __init__(self, sock: socket.socket, retry: tuple[float, float] = (0.1, 5.0)) -> None:
        self._sock = sock
        self._retry = retry  # first and longest wait between failed starts
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._want: bool | None = True  # None: closed for good
        self._held = False
        self._changed = asyncio.Event()  # ends a wait between failed starts
        self._applying: asyncio.Task[None] | None = None
        self.delegated = False  # workers are connected: the daemon's public connections close

    async def serve(self, runner: web.AppRunner) -> None:
        """The first start; a failure here fails the daemon's start (later ones are retried)."""
        self._runner = runner
        await self._step()

    def workers_connected(self, n: int) -> None:
        CONNECTED.set(n)
        self.delegated = n > 0
        if self._runner is None or self._want is None or self._held:
            return
        self._want = n == 0
        self._changed.set()
        if self._applying is None or self._applying.done():
            self._applying = asyncio.create_task(self._apply(), name="public-port")

    def hold(self) -> None:
        """Shutdown began: workers' channels closing no longer make the daemon accept again (a
        client would reach a daemon that is stopping). A change under way completes or fails."""
        self._held = True

    async def _apply(self) -> None:
        wait, failed = self._retry[0], 0
        while self._want is not None and (self._site is not None) != self._want:
            self._changed.clear()
            try:
                await self._step()
            except Exception as e:  # EMFILE above all: the port must not stay closed for good
                failed += 1
                START_FAILURES.inc()
                (log.error if failed == 1 else log.debug)(
                    "the daemon cannot accept on the public port (attempt %d), retrying: %s", failed, e
                )
                if self._held:  # stopping: not tried again
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
                wait = min(self._retry[1], wait * 2)
            else:
                if failed:
                    log.warning("the public port served again after %d failed attempts", failed)
                    failed = 0

    async def _step(self) -> None:
        if self._want and self._site is None:
            assert self._runner is not None
            self._site = await _start(self._runner, self._sock)
            log.info("the daemon accepts on the public port (no http worker connected)")
        elif not self._want and self._site is not None:
            site, self._site = self._site, None
            await site.stop()
            log.info("http workers accept on the public port; the daemon no longer does")

    async def close(self) -> None:
        """Stop accepting for good (shutdown): new connections are refused from here on, not left
        waiting in the backlog while the queue drains. The workers must have stopped."""
        self._want = None
        self._changed.set()
        if self._applying is not None:
            with contextlib.suppress(Exception):
                await self._applying
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()
        self._sock.close()

    def hand_back(self, request: web.Request, response: web.StreamResponse) -> None:
        """While workers accept: a public connection the daemon holds closes after this answer."""
        transport = request.transport if self.delegated else None
        if transport is not None and not isinstance(transport.get_extra_info("sockname"), str):
            # A TCP connection (a unix one's name is its path). The headers are made before this
            # hook runs: the header is set here too, so the client knows why the connection ends.
            response.force_close()
            response.headers["Connection"] = "close"


async def _start(runner: web.AppRunner, sock: socket.socket) -> web.SockSite:
    """Serve a duplicate of `sock`; on failure nothing is left open or registered."""
    dup = sock.dup()
    site: web.SockSite | None = None
    try:
        site = web.SockSite(runner, dup, backlog=1024)
        await site.start()
    except BaseException:
        if site is not None and site in runner.sites:
            await site.stop()  # a failed start leaves the site registered
        dup.close()
        raise
    return site


@dataclass
class Workers:
    """N worker processes, each replaced when it ends while the daemon runs."""

    count: int
    spec: bytes  # one JSON line for each worker's stdin
    fd: int
    socket: Path  # the daemon's side of the channels, removed when the workers stop
    link: Path
    procs: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: bool = False
    server: asyncio.AbstractServer | None = None  # the frames' channel
    channel: LinkServer | None = None
    public: PublicPort | None = None  # held from the start of the stop

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
        their batches); after `grace` seconds, SIGKILL. The daemon does not take the port back as
        their channels close: it is stopping too."""
        self.stopping = True
        if self.public is not None:
            self.public.hold()
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
        if self.server is not None:
            self.server.close()
        if self.channel is not None:
            await self.channel.drain()
        for path in (self.socket, self.link):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def socket_path(config: Config) -> Path:
    return config.storage.data_dir / SOCKET_FILE


def link_path(config: Config) -> Path:
    return config.storage.data_dir / LINK_FILE


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
    return config.http.workers > 0 and enabled_section(config, "webhook") is not None


def prepare(config: Config, app: web.Application, public: PublicPort) -> str | None:
    """Before the app starts: the internal routes when workers are on; their secret, else None."""
    if config.http.workers < 0:
        raise ConfigError(f"'http.workers': expected 0 or more, got {config.http.workers}")
    if not enabled(config):
        return None

    async def hand_back(request: web.Request, response: web.StreamResponse) -> None:
        public.hand_back(request, response)

    app.on_response_prepare.append(hand_back)
    return add_routes(app)


async def start(
    config: Config, runner: web.AppRunner, listen: socket.socket, secret: str | None, public: PublicPort
) -> Workers | None:
    """After the public port: serve the app and the frames' channel on unix sockets, then start
    the workers; `public` stops accepting while any is connected."""
    if secret is None:
        return None
    site = web.SockSite(runner, unix_socket(socket_path(config)))
    await site.start()
    ingest = runner.app[STATE].ingest
    assert ingest is not None
    channel = LinkServer(secret, ingest.put_serialised, public.workers_connected)
    workers = make(config, listen, secret)
    workers.channel = channel
    workers.public = public
    workers.server = await asyncio.start_unix_server(channel.handle, sock=unix_socket(workers.link))
    await workers.start()
    log.info("%d http workers take the public port", workers.count)
    return workers


def make(config: Config, listen: socket.socket, secret: str) -> Workers:
    http, ingest, logging_ = config.http, config.ingest, config.logging
    spec = {
        "fd": listen.fileno(),
        "socket": str(socket_path(config).resolve()),
        "link": str(link_path(config).resolve()),
        "secret": secret,
        "max_body_bytes": http.max_body_bytes,
        "max_connections": http.max_connections,
        "body_timeout": http.body_timeout,
        "idle_timeout": http.idle_timeout,
        "shutdown_timeout": config.shutdown_grace / 2,
        "max_future": ingest.max_future,
        "max_past": ingest.max_past,
        "webhook": {k: v for k, v in (enabled_section(config, "webhook") or {}).items() if k != "enabled"},
        "log_level": logging_.level,
        "log_format": logging_.format,
    }
    return Workers(
        http.workers, orjson.dumps(spec) + b"\n", listen.fileno(), socket_path(config), link_path(config)
    )
