"""Outbound webhook delivery: a bounded queue and workers per target that POST bodies with retries.

Shared by the notify stage (correlator/notify.py) and the incident notifier (incidents/notify.py): each
parses its own targets, renders its own bodies and names its own metrics, then hands bodies to an Outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp
from prometheus_client import Counter, Histogram

from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)


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


@dataclass(frozen=True)
class Meters:
    """The metrics of one feature's outbox, declared by that feature under its documented names."""

    outcomes: Counter  # labels target, outcome: sent, failed, dropped (queue full)
    attempts: Counter | None = None  # label target: every HTTP attempt
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
    """

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        meters: Meters,
        *,
        label: str,  # names the feature in log lines and task names: "notify", "incident notify"
        queue_size: int,  # per target
        workers: int = 1,  # per target; 1 keeps a target's notices in order
    ) -> None:
        self.endpoints = dict(endpoints)
        self.meters = meters
        self.label = label
        self._workers = workers
        self._queues: dict[str, asyncio.Queue[tuple[bytes, float]]] = {
            name: asyncio.Queue(queue_size) for name in self.endpoints
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None or not self.endpoints:
            return
        self._session = aiohttp.ClientSession()
        for name, endpoint in self.endpoints.items():
            queue = self._queues[name]
            for i in range(self._workers):
                task = asyncio.create_task(self._work(endpoint, queue), name=f"{self.label}:{name}:{i}")
                self._tasks.append(task)

    def put(self, target: str, body: bytes) -> bool:
        """Queue one body for `target` (a configured name); False when its queue is full (dropped)."""
        try:
            self._queues[target].put_nowait((body, time.monotonic()))
        except asyncio.QueueFull:
            self.meters.outcomes.labels(target, "dropped").inc()
            _limited.warning(
                f"{self.label}:{target}:full", "%s %s: queue full, dropped a notice", self.label, target
            )
            return False
        return True

    async def drain(self, seconds: float | None = None) -> None:
        """Wait (at most `seconds`, if given) until every queued body has its final outcome."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                for queue in self._queues.values():
                    await queue.join()

    async def aclose(self, grace: float = 2.0) -> None:
        """Give the queues `grace` seconds to drain, then stop the workers and close the session."""
        if self._tasks:
            await self.drain(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self, endpoint: Endpoint, queue: asyncio.Queue[tuple[bytes, float]]) -> None:
        while True:
            body, queued = await queue.get()
            try:
                try:
                    outcome = await self._deliver(endpoint, body)
                except Exception:
                    log.exception("%s %s: delivery failed unexpectedly", self.label, endpoint.name)
                    outcome = "failed"
                self.meters.outcomes.labels(endpoint.name, outcome).inc()
                if self.meters.seconds is not None:
                    self.meters.seconds.observe(time.monotonic() - queued)
            finally:
                queue.task_done()

    async def _deliver(self, endpoint: Endpoint, body: bytes) -> str:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **endpoint.headers}
        timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
        problem = ""
        for attempt in range(endpoint.retries + 1):
            if self.meters.attempts is not None:
                self.meters.attempts.labels(endpoint.name).inc()
            retry_after: str | None = None
            try:
                async with self._session.post(endpoint.url, data=body, headers=headers, timeout=timeout) as r:
                    if 200 <= r.status < 300:
                        return "sent"
                    problem = f"HTTP {r.status}"
                    if _is_final(r.status):
                        self._warn(endpoint, "%s, not retried", problem)
                        return "failed"
                    retry_after = r.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt < endpoint.retries:
                await asyncio.sleep(retry_delay(endpoint, attempt, retry_after))
        self._warn(endpoint, "gave up after %d attempts (%s)", endpoint.retries + 1, problem)
        return "failed"

    def _warn(self, endpoint: Endpoint, msg: str, *args: object) -> None:
        key = f"{self.label}:{endpoint.name}"
        _limited.warning(key, f"%s %s: {msg}", self.label, endpoint.name, *args)


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
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
