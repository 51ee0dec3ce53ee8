"""The PagerDuty notifier (Events API v2): an incident's life as trigger, acknowledge and resolve
events under one stable `dedup_key`, so PagerDuty keeps one alert per incident.

The routing key is read from a file and added when sending: it is never in outbox.db nor in a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from correlator.notify import targets as t
from correlator.notify.notice import Notice
from correlator.notify.outbox import Attempt, Endpoint, post
from correlator.notify.templates import Template, optional
from correlator.secretfile import read_secret

if TYPE_CHECKING:
    import aiohttp

KEYS = frozenset({"url", "routing_key_file", "summary", "source", "headers"})
DEFAULT_ON = ("open", "update", "resolve", "close", "major", "escalate")
EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# Incident severity -> PagerDuty's four.
SEVERITY = {"critical": "critical", "major": "error", "minor": "warning", "warning": "warning",
            "info": "info", "clear": "info"}  # fmt: skip
SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries; cut here so the cut is ours
_DETAILS = ("priority", "status", "service", "assignment_group", "assignee", "event_count",
            "escalation_level", "major", "description", "key")  # fmt: skip


@dataclass(frozen=True)
class PagerDuty:
    routing_key: str = field(repr=False)
    summary: Template | None
    source: str | None  # payload.source when the incident has no host

    def render(self, kind: str, doc: dict[str, Any]) -> bytes:
        return orjson.dumps(event(kind, doc, self.summary, self.source))

    def endpoint(self, target: t.NotifyTarget) -> Endpoint:
        return t.endpoint(target, transport=self)

    async def attempt(self, endpoint: Endpoint, notice: Notice, session: aiohttp.ClientSession) -> Attempt:
        body = orjson.loads(notice.body)
        body["routing_key"] = self.routing_key
        return await post(endpoint, orjson.dumps(body), notice.headers, session)


def build(spec: Mapping[str, Any], where: str) -> tuple[str, PagerDuty]:
    url = t.url(spec, where, EVENTS_URL)
    if "routing_key_file" not in spec:
        t.fail(spec, "type", f"{where}.routing_key_file", "required: the file holding the integration key")
    try:
        key = read_secret(spec["routing_key_file"])
    except ValueError as e:
        t.fail(spec, "routing_key_file", f"{where}.routing_key_file", str(e))
    source = spec.get("source")
    if source is not None and not isinstance(source, str):
        t.fail(spec, "source", f"{where}.source", "expected a string")
    return url, PagerDuty(key, optional(spec, "summary", where), source)


def action(kind: str, doc: Mapping[str, Any]) -> str:
    """resolve once resolved or closed, acknowledge while acknowledged, else trigger (re-triggering
    an open alert with the same dedup_key only adds to its log in PagerDuty)."""
    status = doc.get("status")
    if kind in ("resolve", "close") or status in ("resolved", "closed"):
        return "resolve"
    if status in ("acknowledged", "in_progress", "on_hold"):  # someone works on it: stop paging
        return "acknowledge"
    return "trigger"


def dedup_key(doc: Mapping[str, Any]) -> str:
    """Stable for the incident's whole life, reopenings included."""
    return f"correlator/{doc.get('id', '')}"


def event(kind: str, doc: dict[str, Any], summary: Template | None, source: str | None) -> dict[str, Any]:
    what = action(kind, doc)
    out: dict[str, Any] = {"event_action": what, "dedup_key": dedup_key(doc)}
    if what != "trigger":  # acknowledge and resolve carry no payload (Events API v2)
        return out
    text = summary.render(kind, doc) if summary is not None else f"{doc.get('id', '')} {doc.get('title', '')}"
    payload: dict[str, Any] = {
        "summary": text.strip()[:SUMMARY_MAX] or str(doc.get("id", "")),
        "source": doc.get("host") or source or "correlator",
        "severity": SEVERITY.get(str(doc.get("severity")), "error"),
        "custom_details": {k: doc[k] for k in _DETAILS if doc.get(k) not in (None, "")},
    }
    for ours, theirs in (("opened_at", "timestamp"), ("service", "component"),
                         ("assignment_group", "group"), ("category", "class")):  # fmt: skip
        if doc.get(ours):
            payload[theirs] = doc[ours]
    out.update(payload=payload, client="correlator")
    return out
