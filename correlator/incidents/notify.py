"""Outbound incident notifications: one HTTP POST per event to each subscribed webhook target.

Bodies are rendered when the change is saved (a snapshot) from a `string.Template` (no code in
config), then sent by one background worker per target with retries, so a slow or dead receiver
never holds up the pipeline or another target. A full queue drops and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import string
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter

from correlator.incidents.settings import NotifyTarget
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

NOTIFICATIONS = Counter(
    "correlator_incident_notifications_total",
    "Incident notifications by target and outcome (sent, failed after retries, dropped: queue full)",
    ["target", "outcome"],
)

QUEUE_SIZE = 1000

TEMPLATE_FIELDS = (
    "id",
    "kind",
    "title",
    "description",
    "status",
    "priority",
    "severity",
    "host",
    "service",
    "category",
    "assignment_group",
    "assignee",
    "event_count",
    "escalation_level",
    "major",
    "opened_at",
    "key",
)


def render(target: NotifyTarget, kind: str, doc: dict[str, Any]) -> bytes:
    """The request body for one target: its template with $fields, or the default JSON document."""
    if target.template is None:
        return orjson.dumps({"kind": kind, "incident": doc})
    escape = "json" in target.content_type
    values: dict[str, str] = {}
    for name in TEMPLATE_FIELDS:
        raw = kind if name == "kind" else doc.get(name)
        text = "" if raw is None else str(raw).lower() if isinstance(raw, bool) else str(raw)
        # Inside a JSON template the value sits between quotes the operator wrote: escape, no quotes.
        values[name] = orjson.dumps(text).decode()[1:-1] if escape else text
    return string.Template(target.template).safe_substitute(values).encode()


class Notifier:
    def __init__(self, targets: dict[str, NotifyTarget]) -> None:
        self._targets = targets
        self._queues: dict[str, asyncio.Queue[tuple[str, bytes]]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    async def start(self) -> None:
        if not self._targets:
            return
        self._session = aiohttp.ClientSession()
        for name, target in self._targets.items():
            q: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(QUEUE_SIZE)
            self._queues[name] = q
            self._workers.append(asyncio.create_task(self._worker(target, q), name=f"notify:{name}"))

    def submit(self, kind: str, doc: dict[str, Any], extra_targets: tuple[str, ...] = ()) -> None:
        """Queue one notice for each target subscribed to `kind` and each of `extra_targets`."""
        for name, target in self._targets.items():
            wanted = kind in target.on or name in extra_targets
            q = self._queues.get(name)
            if not wanted or q is None:
                continue
            try:
                q.put_nowait((kind, render(target, kind, doc)))
            except asyncio.QueueFull:
                NOTIFICATIONS.labels(name, "dropped").inc()
                _ratelog.warning(
                    f"notify:{name}", "notification queue of %s full: dropped a %s notice", name, kind
                )

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) until every queued notification has been tried."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                for q in self._queues.values():
                    await q.join()

    async def stop(self, grace: float = 2.0) -> None:
        await self.drain(grace)
        for w in self._workers:
            w.cancel()
        for w in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _worker(self, target: NotifyTarget, q: asyncio.Queue[tuple[str, bytes]]) -> None:
        while True:
            _kind, body = await q.get()
            try:
                ok = await self._send(target, body)
                NOTIFICATIONS.labels(target.name, "sent" if ok else "failed").inc()
            finally:
                q.task_done()

    async def _send(self, target: NotifyTarget, body: bytes) -> bool:
        assert self._session is not None
        headers = {"Content-Type": target.content_type, **dict(target.headers)}
        delay = target.retry_delay
        for attempt in range(target.retries + 1):
            try:
                async with self._session.post(
                    target.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=target.timeout),
                ) as resp:
                    if resp.status < 400:
                        return True
                    # A 4xx other than 408/429 will not get better by retrying.
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        _ratelog.warning(
                            target.name, "notify %s: HTTP %d, not retried", target.name, resp.status
                        )
                        return False
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = str(e) or type(e).__name__
            if attempt < target.retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        _ratelog.warning(
            target.name, "notify %s failed after %d attempts: %s", target.name, target.retries + 1, problem
        )
        return False
