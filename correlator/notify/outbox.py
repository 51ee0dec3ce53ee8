"""Outbound delivery: a bounded queue and workers per target that send bodies with retries, saved
in `<data_dir>/outbox.db` (store.py) until each has its final outcome.

Shared by the notify stage (stage.py) and the incident notifier (incidents.py): each parses its own
targets, renders its own bodies and names its own metrics, then hands bodies to an Outbox. One attempt
is an HTTP POST unless the endpoint brings its own `transport` (email, PagerDuty's routing key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client.metrics import Counter, Histogram

from correlator.logs import RateLimitedLog
from correlator.notify.notice import Notice

if TYPE_CHECKING:  # loaded by start(): replay and `rules test` never send and skip loading them
    import aiohttp

    from correlator.notify.store import OutboxStore

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try to deliver gave: `sent`, `retry` (after `retry_after` if the peer said) or `final`
    (the peer refused the notice itself: trying again cannot help)."""

    result: Literal["sent", "retry", "final"]
    problem: str = ""  # for the log line; never holds a secret
    retry_after: str | None = None  # a Retry-After header's value


class Transport(Protocol):
    """One delivery attempt of a notice to an endpoint. Raising a network error (OSError, TimeoutError,
    aiohttp.ClientError) counts as a retryable failure; anything else fails the notice, logged."""

    async def attempt(
        self, endpoint: Endpoint, notice: Notice, session: aiohttp.ClientSession
    ) -> Attempt: ...


@dataclass(frozen=True)
class Endpoint:
    """Where one target is and how hard to try. Content-Type is application/json unless `headers` says."""

    name: str
    url: str
    timeout: float = 5.0  # per attempt
    retries: int = 5  # attempts after the first
    backoff: float = 1.0  # first retry delay; doubles each time
    max_backoff: float = 60.0  # caps the doubling and any Retry-After
    headers: Mapping[str, str] = field(default_factory=dict)
    max_age: float = 86400.0  # a notice older than this is dropped (outcome "expired"), not sent late
    transport: Transport | None = None  # None: POST the body to `url` (the webhook way)


@dataclass(frozen=True)
class Meters:
    """The metrics of one feature's outbox, declared by that feature under its documented names."""

    outcomes: Counter  # labels target, outcome: sent, failed, expired (max_age), dropped (queue full)
    attempts: Counter | None = None  # label target: every delivery attempt
    seconds: Histogram | None = None  # enqueue to final outcome


def retry_delay(endpoint: Endpoint, attempt: int, retry_after: str | None = None) -> float:
    """Delay before retry number `attempt` (0-based): doubling from `backoff`, capped; Retry-After wins.

    Retry-After may be seconds or an HTTP date (RFC 9110); it is capped by `max_backoff` too, so a
    receiver cannot park a worker for hours.
    """
    if retry_after is not None:
        wait = _retry_after_seconds(retry_after)
        if wait is not None:
            return min(max(wait, 0.0), endpoint.max_backoff)
    return float(min(endpoint.backoff * (2**attempt), endpoint.max_backoff))


class Outbox:
    """Per-target bounded queues, each drained by its own workers, so a slow or dead target never
    holds up another target or whoever calls `put` (which never waits: a full queue drops and counts).

    With a `path`, every notice is saved there (store.py) before a worker gets it, its
    attempt count as it is retried, and it is deleted at its final outcome; `start` sends what the
    previous run left. The saving is done by one writer task, a transaction per batch, so `put`
    never touches the disk. Delivery is at least once: a notice in flight at a restart is sent again.
    """

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        meters: Meters,
        *,
        label: str,  # names the feature in log lines, task names and outbox.db: "notify", "incident notify"
        queue_size: int,  # per target: accepted notices that no worker has taken yet
        workers: int = 1,  # per target; 1 keeps a target's notices in order
        path: Path | None = None,  # outbox.db; None keeps notices in memory only (tests)
    ) -> None:
        self.endpoints = dict(endpoints)
        self.meters = meters
        self.label = label
        self._workers = workers
        self._queue_size = queue_size
        # Unbounded: `_waiting` is the bound, so notices left by the previous run always fit.
        self._queues: dict[str, asyncio.Queue[Notice]] = {name: asyncio.Queue() for name in self.endpoints}
        self._waiting = dict.fromkeys(self.endpoints, 0)  # accepted, not yet taken by a worker
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._path = path
        self._store: OutboxStore | None = None  # opened by start(), the first use of the file
        # What the writer saves next: one transaction for all three.
        self._added: list[Notice] = []
        self._retried: dict[str, Notice] = {}
        self._done: list[str] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing added waits for the writer
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        if self._started:
            return
        if self._path is not None and (self.endpoints or self._path.exists()):
            if self._store is None:
                from correlator.notify.store import OutboxStore

                self._store = OutboxStore(self._path, self.label)
            self._restore(await self._store.open())
            self._stopping = False
            self._writer = asyncio.create_task(self._write_loop(), name=f"{self.label}:outbox-writer")
            self._wake.set()  # notices put before start, and those of removed targets
        self._started = True
        if not self.endpoints:
            return
        import aiohttp

        self._session = aiohttp.ClientSession()
        for name, endpoint in self.endpoints.items():
            queue = self._queues[name]
            for i in range(self._workers):
                task = asyncio.create_task(self._work(endpoint, queue), name=f"{self.label}:{name}:{i}")
                self._tasks.append(task)

    def put(self, target: str, body: bytes) -> bool:
        """Queue one body for `target` (a configured name); False when its queue is full (dropped)."""
        endpoint = self.endpoints[target]
        if self._waiting[target] >= self._queue_size:
            self.meters.outcomes.labels(target, "dropped").inc()
            _limited.warning(
                f"{self.label}:{target}:full", "%s %s: queue full, dropped a notice", self.label, target
            )
            return False
        self._waiting[target] += 1
        notice = Notice(uuid.uuid4().hex, target, body, time.time(), _content_type(endpoint))
        if self._path is None:
            self._queues[target].put_nowait(notice)
        else:  # a worker gets it once it is saved
            self._added.append(notice)
            self._idle.clear()
            self._wake.set()
        return True

    def waiting(self, target: str) -> int:
        """Notices accepted for `target` that no worker has taken yet."""
        return self._waiting[target]

    async def drain(self, seconds: float | None = None) -> None:
        """Wait (at most `seconds`, if given) until every queued body has its final outcome."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._idle.wait()
                for queue in self._queues.values():
                    await queue.join()

    async def aclose(self, grace: float = 2.0) -> None:
        """Give the queues `grace` seconds to drain, then stop the workers, save what is left, close."""
        if self._tasks:
            await self.drain(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._writer is not None:
            self._stopping = True
            self._wake.set()
            await self._writer
            self._writer = None
            await self._flush()  # whatever the stopped workers finished after the writer's last batch
            # What is still queued is in the file: a later start reads it from there, not twice.
            self._queues = {name: asyncio.Queue() for name in self.endpoints}
            self._waiting = dict.fromkeys(self.endpoints, 0)
        if self._store is not None:
            await self._store.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._started = False

    def _restore(self, left: list[Notice]) -> None:
        gone: dict[str, int] = {}
        for notice in left:
            if notice.target in self.endpoints:
                self._waiting[notice.target] += 1
                self._queues[notice.target].put_nowait(notice)
            else:
                gone[notice.target] = gone.get(notice.target, 0) + 1
                self.meters.outcomes.labels(notice.target, "dropped").inc()
                self._done.append(notice.id)
        if gone:
            names = ", ".join(f"{name} ({n})" for name, n in sorted(gone.items()))
            log.warning("%s: dropped notices left for targets no longer configured: %s", self.label, names)
        kept = len(left) - sum(gone.values())
        if kept:
            log.info("%s: sending %d notices left by the previous run", self.label, kept)

    async def _write_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        added, retried, done = self._added, list(self._retried.values()), self._done
        self._added, self._retried, self._done = [], {}, []
        if added or retried or done:
            assert self._store is not None
            try:
                await self._store.write(added, retried, done)
            except Exception:
                # Paging from memory beats not paging: the notices are still sent.
                log.exception("%s: could not save %d notices to %s", self.label, len(added), self._store.path)
            for notice in added:
                self._queues[notice.target].put_nowait(notice)
        if not self._added:
            self._idle.set()

    async def _work(self, endpoint: Endpoint, queue: asyncio.Queue[Notice]) -> None:
        while True:
            notice = await queue.get()
            self._waiting[endpoint.name] -= 1
            try:
                try:
                    outcome = await self._deliver(endpoint, notice)
                except Exception:
                    log.exception("%s %s: delivery failed unexpectedly", self.label, endpoint.name)
                    outcome = "failed"
                self.meters.outcomes.labels(endpoint.name, outcome).inc()
                if self.meters.seconds is not None:
                    self.meters.seconds.observe(max(time.time() - notice.created, 0.0))
                self._save(notice, done=True)
            finally:
                queue.task_done()  # cancelled (shutdown): the saved copy is sent at the next start

    async def _deliver(self, endpoint: Endpoint, notice: Notice) -> str:
        assert self._session is not None
        transport = endpoint.transport or HTTP_POST
        while True:
            wait = notice.next_at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.time() - notice.created > endpoint.max_age:
                self._warn(endpoint, "dropped a notice older than max_age (%.0fs)", endpoint.max_age)
                return "expired"
            if self.meters.attempts is not None:
                self.meters.attempts.labels(endpoint.name).inc()
            import aiohttp  # loaded by start(), which made the session

            try:
                tried = await transport.attempt(endpoint, notice, self._session)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                tried = Attempt("retry", f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            if tried.result == "sent":
                return "sent"
            if tried.result == "final":
                self._warn(endpoint, "%s, not retried", tried.problem)
                return "failed"
            notice.attempts += 1
            if notice.attempts > endpoint.retries:
                self._warn(endpoint, "gave up after %d attempts (%s)", notice.attempts, tried.problem)
                return "failed"
            notice.next_at = time.time() + retry_delay(endpoint, notice.attempts - 1, tried.retry_after)
            self._save(notice, done=False)

    def _save(self, notice: Notice, *, done: bool) -> None:
        """Hand a retry's attempt count, or a final outcome (delete), to the writer."""
        if self._writer is None:
            return
        if done:
            self._retried.pop(notice.id, None)
            self._done.append(notice.id)
        else:
            self._retried[notice.id] = notice
        self._wake.set()

    def _warn(self, endpoint: Endpoint, msg: str, *args: object) -> None:
        key = f"{self.label}:{endpoint.name}"
        _limited.warning(key, f"%s %s: {msg}", self.label, endpoint.name, *args)


class HttpPost:
    """The webhook way: POST the body; 2xx is sent, 4xx other than 408/429 is final, the rest retried."""

    async def attempt(self, endpoint: Endpoint, notice: Notice, session: aiohttp.ClientSession) -> Attempt:
        return await post(endpoint, notice.body, notice.headers, session)


async def post(
    endpoint: Endpoint, body: bytes, headers: Mapping[str, str], session: aiohttp.ClientSession
) -> Attempt:
    """POST `body` to the endpoint with its configured headers, then the notice's own (Content-Type)."""
    import aiohttp  # loaded by Outbox.start(), which made the session

    sent = {"Content-Type": "application/json", **endpoint.headers, **headers}
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    async with session.post(endpoint.url, data=body, headers=sent, timeout=timeout) as r:
        if 200 <= r.status < 300:
            return Attempt("sent")
        if _is_final(r.status):
            return Attempt("final", f"HTTP {r.status}")
        return Attempt("retry", f"HTTP {r.status}", r.headers.get("Retry-After"))


HTTP_POST = HttpPost()


def _content_type(endpoint: Endpoint) -> dict[str, str]:
    """The Content-Type the body was rendered for, kept with it: a later config may change it."""
    for name, value in endpoint.headers.items():
        if name.lower() == "content-type":
            return {"Content-Type": value}
    return {}


def _is_final(status: int) -> bool:
    """A 4xx other than 408/429 says the request itself is wrong: retrying will not help."""
    return 400 <= status < 500 and status not in (408, 429)


def _retry_after_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    # Only an HTTP-date Retry-After needs email.utils (with email, calendar, random): not at start-up.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
