"""Outbound webhooks: the notify stage takes NotifyRequests from correlation and POSTs them, with retries.

Sits after the correlate stage. Sending never blocks the pipeline: requests go to a bounded queue
drained by a few workers; a full queue drops (counted). Retries use capped exponential backoff and
honour Retry-After; 4xx answers other than 408/429 are not retried (the request itself is wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram

from correlator.config import Config, parse_duration
from correlator.errors import ConfigError, did_you_mean
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.pipeline import StageContext
from correlator.responses import NotifyRequest

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

NOTIFICATIONS = Counter(
    "correlator_notifications_total",
    "Outbound notifications by target and outcome (sent, failed, dropped, replay)",
    ["target", "outcome"],
)
ATTEMPTS = Counter(
    "correlator_notification_attempts_total", "HTTP attempts to deliver notifications", ["target"]
)
SEND_SECONDS = Histogram(
    "correlator_notification_seconds",
    "Time from enqueue to final outcome of a notification",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    timeout: float = 5.0
    retries: int = 5  # attempts after the first
    backoff: float = 1.0  # first retry delay; doubles each time
    max_backoff: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)


_TARGET_KEYS = ("url", "timeout", "retries", "backoff", "max_backoff", "headers")


def parse_targets(raw: dict[str, Any]) -> dict[str, Target]:
    """`correlation.notify` in correlator.yaml: {name: {url, timeout, retries, backoff, ...}}."""
    targets: dict[str, Target] = {}
    for name, spec in raw.items():
        where = f"correlation.notify.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping with at least 'url'")
        for k in spec:
            if k not in _TARGET_KEYS:
                hint = did_you_mean(k, _TARGET_KEYS)
                raise ConfigError(
                    f"{where}: unknown key {k!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                )
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
        try:
            timeout = parse_duration(spec.get("timeout", 5.0))
            backoff = parse_duration(spec.get("backoff", 1.0))
            max_backoff = parse_duration(spec.get("max_backoff", 60.0))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        retries = spec.get("retries", 5)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"{where}.retries: expected a whole number >= 0, got {retries!r}")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{where}.headers: expected a mapping of header names to strings")
        targets[name] = Target(name, url, timeout, retries, backoff, max_backoff, dict(headers))
    return targets


def retry_delay(target: Target, attempt: int, retry_after: str | None = None) -> float:
    """Delay before retry number `attempt` (0-based): doubling from `backoff`, capped; Retry-After wins."""
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            return min(max(float(retry_after), 0.0), target.max_backoff)
    return float(min(target.backoff * (2**attempt), target.max_backoff))


class WebhookSender:
    def __init__(self, targets: dict[str, Target], queue_size: int = 10_000, workers: int = 4) -> None:
        self.targets = targets
        self._queue: asyncio.Queue[tuple[NotifyRequest, float]] = asyncio.Queue(queue_size)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession()
        self._tasks = [asyncio.create_task(self._work(), name=f"notify-{i}") for i in range(self._workers)]

    def submit(self, req: NotifyRequest) -> bool:
        if req.target not in self.targets:
            NOTIFICATIONS.labels("unknown", "dropped").inc()
            _limited.warning("notify-unknown", "rule %s notifies unknown target %r", req.rule, req.target)
            return False
        try:
            self._queue.put_nowait((req, time.monotonic()))
        except asyncio.QueueFull:
            NOTIFICATIONS.labels(req.target, "dropped").inc()
            _limited.warning("notify-full", "notification queue full: dropped one for %s", req.target)
            return False
        return True

    async def drain(self) -> None:
        """Wait until every queued notification has its final outcome (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self, grace: float = 2.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self) -> None:
        while True:
            req, queued = await self._queue.get()
            try:
                outcome = await self._deliver(req)
            except Exception:
                log.exception("notification to %s failed unexpectedly", req.target)
                outcome = "failed"
            finally:
                self._queue.task_done()
            NOTIFICATIONS.labels(req.target, outcome).inc()
            SEND_SECONDS.observe(time.monotonic() - queued)

    async def _deliver(self, req: NotifyRequest) -> str:
        target = self.targets[req.target]
        assert self._session is not None
        headers = {"Content-Type": "application/json", **target.headers}
        timeout = aiohttp.ClientTimeout(total=target.timeout)
        for attempt in range(target.retries + 1):
            ATTEMPTS.labels(target.name).inc()
            retry_after: str | None = None
            try:
                async with self._session.post(
                    target.url, data=req.body, headers=headers, timeout=timeout
                ) as r:
                    if 200 <= r.status < 300:
                        return "sent"
                    problem = f"HTTP {r.status}"
                    if 400 <= r.status < 500 and r.status not in (408, 429):
                        _limited.warning(
                            f"notify:{target.name}", "notify %s: %s, not retried", target.name, problem
                        )
                        return "failed"
                    retry_after = r.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = f"{type(e).__name__}: {e}"
            if attempt == target.retries:
                _limited.warning(
                    f"notify:{target.name}",
                    "notify %s: gave up after %d attempts (%s)",
                    target.name,
                    attempt + 1,
                    problem,
                )
                return "failed"
            await asyncio.sleep(retry_delay(target, attempt, retry_after))
        return "failed"


class Notify:
    """The stage: takes the NotifyRequests out of ctx.responses and queues them for sending (live only)."""

    name = "notify"

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        mine = [r for r in ctx.responses if isinstance(r, NotifyRequest)]
        if not mine:
            return events
        ctx.responses[:] = [r for r in ctx.responses if not isinstance(r, NotifyRequest)]
        if not ctx.live:  # replay and rule tests never call out
            for r in mine:
                NOTIFICATIONS.labels(
                    r.target if r.target in self.sender.targets else "unknown", "replay"
                ).inc()
            return events
        await self.sender.start()
        for r in mine:
            self.sender.submit(r)
        return events

    async def aclose(self) -> None:
        await self.sender.aclose()


def notify_stage(config: Config) -> Notify:
    return Notify(WebhookSender(parse_targets(config.correlation.notify)))
