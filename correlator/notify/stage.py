"""The notify stage: takes the NotifyRequests of level-2 rules from correlation and POSTs them, with retries.

Sits after the correlate stage. Sending never blocks the pipeline: requests go to the target's bounded
queue in an Outbox (outbox.py), which owns delivery, retries and outcome counting; this module owns
the `correlation.notify` targets, the unknown-target rule and the replay rule.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prometheus_client.metrics import Counter, Histogram

from correlator.clock import Clock
from correlator.config import Config, parse_duration
from correlator.errors import ConfigError, did_you_mean
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.notify.notice import FILE as OUTBOX_FILE
from correlator.notify.outbox import Endpoint, Meters, Outbox
from correlator.notify.outbox import retry_delay as retry_delay  # the backoff of this module's targets
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


METERS = Meters(NOTIFICATIONS, ATTEMPTS, SEND_SECONDS)
QUEUE_SIZE = 10_000  # per target
WORKERS = 4  # per target: a busy target gets some parallelism, a dead one only stalls its own

# A notify target is an outbox endpoint as it stands: the keys below are its fields.
Target = Endpoint


_TARGET_KEYS = ("url", "timeout", "retries", "backoff", "max_backoff", "headers", "max_age")


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
            max_age = parse_duration(spec.get("max_age", 86400.0))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        retries = spec.get("retries", 5)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"{where}.retries: expected a whole number >= 0, got {retries!r}")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{where}.headers: expected a mapping of header names to strings")
        targets[name] = Target(name, url, timeout, retries, backoff, max_backoff, dict(headers), max_age)
    return targets


class WebhookSender:
    """The notify stage's outbox: drops (and counts under target="unknown") requests for unknown targets."""

    def __init__(
        self,
        targets: dict[str, Target],
        queue_size: int = QUEUE_SIZE,
        workers: int = WORKERS,
        path: Path | None = None,  # outbox.db; None: in memory only
    ) -> None:
        self.targets = targets
        self.outbox = Outbox(
            targets, METERS, label="notify", queue_size=queue_size, workers=workers, path=path
        )

    async def start(self) -> None:
        await self.outbox.start()

    def submit(self, req: NotifyRequest) -> bool:
        if req.target not in self.targets:
            NOTIFICATIONS.labels("unknown", "dropped").inc()
            _limited.warning("notify-unknown", "rule %s notifies unknown target %r", req.rule, req.target)
            return False
        return self.outbox.put(req.target, req.body)

    async def drain(self) -> None:
        """Wait until every queued notification has its final outcome (tests, shutdown)."""
        await self.outbox.drain()

    async def aclose(self, grace: float = 2.0) -> None:
        await self.outbox.aclose(grace)


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

    async def open(self, clock: Clock) -> None:
        """Live only (Pipeline.open): send what the previous run left in outbox.db."""
        await self.sender.start()

    async def close(self) -> None:
        await self.sender.aclose(0.0)  # after aclose (shutdown) there is nothing left to do

    async def aclose(self) -> None:
        await self.sender.aclose()


def notify_stage(config: Config) -> Notify:
    path = config.storage.data_dir / OUTBOX_FILE
    return Notify(WebhookSender(parse_targets(config.correlation.notify), path=path))
