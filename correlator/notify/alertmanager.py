"""The Alertmanager notifier: each open incident is an alert posted to `/api/v2/alerts`, re-sent
while it is open (Alertmanager resolves an alert not re-sent within its resolve_timeout) and ended
(endsAt = now) when the incident is resolved or closed, so a NOC can route and silence there.

The labels identify the alert in Alertmanager, so they hold what stays fixed or what routing needs;
when a routing label changes (priority raised), the alert under the old labels is ended at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from correlator.event import iso
from correlator.notify import targets as t
from correlator.notify.outbox import Endpoint
from correlator.notify.templates import Template, optional

KEYS = frozenset({"url", "labels", "summary", "description", "resend", "headers", "alertname"})
DEFAULT_ON = ("open", "update", "resolve", "close", "major", "escalate")
PATH = "/api/v2/alerts"
DEFAULT_RESEND = 60.0  # well below Alertmanager's default resolve_timeout of 5 minutes
_LABEL_FIELDS = ("priority", "severity", "host", "service", "assignment_group", "category")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@dataclass(frozen=True)
class Alertmanager:
    alertname: str
    labels: tuple[tuple[str, str], ...]  # the operator's static labels (team, environment)
    summary: Template | None
    description: Template | None
    resend: float  # seconds between re-sends of an open incident
    # incident id -> (labels last posted, the incident as last notified), while it is open
    open: dict[str, tuple[dict[str, str], dict[str, Any]]] = field(default_factory=dict, compare=False)

    def render(self, kind: str, doc: dict[str, Any]) -> bytes:
        key = str(doc.get("id", ""))
        labels = self.labels_of(doc)
        ended = kind in ("resolve", "close") or doc.get("status") in ("resolved", "closed")
        now = time.time()
        alerts = [self.alert(kind, doc, labels, now, ended)]
        before = self.open.pop(key, None)
        if before is not None and before[0] != labels:  # an alert under the old labels would linger
            alerts.append(self.alert(kind, before[1], before[0], now, True))
        if not ended:
            self.open[key] = (labels, doc)
        return orjson.dumps(alerts)

    def forget(self, doc: dict[str, Any]) -> bytes | None:
        """The alert of an incident no longer routed here, ended; None when none is open."""
        before = self.open.pop(str(doc.get("id", "")), None)
        if before is None:
            return None
        return orjson.dumps([self.alert("resolve", before[1], before[0], time.time(), True)])

    def resend_bodies(self) -> list[bytes]:
        """One body per open incident, as last notified: keeps its alert firing in Alertmanager."""
        now = time.time()
        return [
            orjson.dumps([self.alert("resend", doc, labels, now, False)])
            for labels, doc in self.open.values()
        ]

    def labels_of(self, doc: Mapping[str, Any]) -> dict[str, str]:
        labels = {"alertname": self.alertname, "incident": str(doc.get("id", ""))}
        for name in _LABEL_FIELDS:
            if doc.get(name) not in (None, ""):
                labels[name] = str(doc[name])
        labels.update(self.labels)
        return labels

    def alert(
        self, kind: str, doc: dict[str, Any], labels: dict[str, str], now: float, ended: bool
    ) -> dict[str, Any]:
        """One alert; an `ended` one has endsAt = now, a firing one none (Alertmanager then keeps it
        for its resolve_timeout, and a late re-send can never end it by mistake)."""
        summary = self.summary.render(kind, doc) if self.summary is not None else str(doc.get("title", ""))
        annotations = {"summary": summary, "status": str(doc.get("status", ""))}
        if self.description is not None:
            annotations["description"] = self.description.render(kind, doc)
        elif doc.get("description"):
            annotations["description"] = str(doc["description"])
        out: dict[str, Any] = {"labels": labels, "annotations": annotations}
        starts = _starts(doc.get("opened_at"), now)
        if starts is not None:
            out["startsAt"] = starts
        if ended:
            out["endsAt"] = iso(now)
        return out

    def endpoint(self, target: t.NotifyTarget) -> Endpoint:
        return t.endpoint(target)


def _starts(opened_at: Any, now: float) -> str | None:
    """The incident's opening, but never in the future: Alertmanager refuses an alert whose start
    is after the end it gives a firing alert (now + resolve_timeout), as after a replay or a skew."""
    if not isinstance(opened_at, str):
        return None
    try:
        opened = datetime.fromisoformat(opened_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return iso(min(opened, now))


def build(spec: Mapping[str, Any], where: str) -> tuple[str, Alertmanager]:
    url = t.url(spec, where).rstrip("/")
    if not url.endswith(PATH):
        url += PATH
    labels = spec.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and _LABEL_NAME.match(k) and isinstance(v, str) and v for k, v in labels.items()
    ):
        t.fail(spec, "labels", f"{where}.labels", "expected a mapping of label names to non-empty strings")
    alertname = spec.get("alertname", "CorrelatorIncident")
    if not isinstance(alertname, str) or not alertname:
        t.fail(spec, "alertname", f"{where}.alertname", "expected a non-empty string")
    resend = t.duration(spec, "resend", f"{where}.resend", DEFAULT_RESEND)
    if resend <= 0:
        t.fail(spec, "resend", f"{where}.resend", "expected a duration above 0, below resolve_timeout")
    channel = Alertmanager(alertname, tuple((str(k), str(v)) for k, v in labels.items()),
                           optional(spec, "summary", where), optional(spec, "description", where), resend)  # fmt: skip
    return url, channel
