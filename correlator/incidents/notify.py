"""Outbound incident notifications: one HTTP POST per event to each subscribed webhook target.

Bodies are rendered when the change is saved (a snapshot) from a `string.Template` (no code in
config), then handed to an Outbox (correlator/outbox.py): one queue and worker per target with
retries, saved in outbox.db until sent, so a slow or dead receiver never holds up the pipeline or
another target, and a restart loses none.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter

from correlator.incidents.settings import NotifyTarget
from correlator.outbox import Endpoint, Meters, Outbox

NOTIFICATIONS = Counter(
    "correlator_incident_notifications_total",
    "Incident notifications by target and outcome (sent, failed after retries, dropped: queue full)",
    ["target", "outcome"],
)

QUEUE_SIZE = 1000  # per target
MAX_RETRY_DELAY = 60.0  # caps retry_delay's doubling and any Retry-After

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


def endpoint(target: NotifyTarget) -> Endpoint:
    """Where and how the outbox sends one target's notices; `retry_delay` is the first backoff."""
    return Endpoint(
        name=target.name,
        url=target.url,
        timeout=target.timeout,
        retries=target.retries,
        backoff=target.retry_delay,
        max_backoff=MAX_RETRY_DELAY,
        headers={"Content-Type": target.content_type, **dict(target.headers)},
        max_age=target.max_age,
    )


class Notifier:
    """Renders each notice for the targets that want it and queues it; one worker per target keeps
    a target's notices in order (open before resolve)."""

    def __init__(self, targets: dict[str, NotifyTarget], path: Path | None = None) -> None:
        self._targets = targets
        self._outbox = Outbox(
            {name: endpoint(t) for name, t in targets.items()},
            Meters(NOTIFICATIONS),
            label="incident notify",
            queue_size=QUEUE_SIZE,
            path=path,  # outbox.db; None: in memory only
        )

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    async def start(self) -> None:
        await self._outbox.start()

    def submit(self, kind: str, doc: dict[str, Any], extra_targets: tuple[str, ...] = ()) -> None:
        """Queue one notice for each target subscribed to `kind` and each of `extra_targets`."""
        for name, target in self._targets.items():
            if kind in target.on or name in extra_targets:
                self._outbox.put(name, render(target, kind, doc))

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) until every queued notification has been tried."""
        await self._outbox.drain(seconds)

    async def stop(self, grace: float = 2.0) -> None:
        await self._outbox.aclose(grace)
