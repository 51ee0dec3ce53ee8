"""Grafana alerting webhook: unified alerting (Alertmanager-shaped, Grafana 8+) and legacy (Grafana < 8).

Unified payloads go through the Alertmanager mapping, keeping Grafana's extra fields (values,
dashboard and panel URLs) as attributes; a legacy payload is one event per notification, keyed by rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.webhook import alertmanager
from collectors.webhook.formats import Converter, Result, each, text
from correlator.errors import FieldError
from correlator.event import Event, Severity, fingerprint, new_id

_EXTRA = ("values", "valueString", "dashboardURL", "panelURL", "silenceURL", "imageURL")
_LEGACY_STATES = {
    "alerting": None,  # the rule's severity (tag) or the default
    "ok": Severity.CLEAR,
    "no_data": Severity.WARNING,
    "paused": Severity.INFO,
    "pending": Severity.INFO,
}


def make(raw: Mapping[str, Any], where: str) -> Converter:
    opts = alertmanager.parse_options(raw, where, "grafana")
    return lambda doc, source, received, body=None: convert(doc, source, received, opts, body)


def convert(
    doc: Any, source: str, received: float, opts: alertmanager.AlertOptions, body: bytes | None = None
) -> Result:
    if isinstance(doc, dict) and "alerts" in doc:
        return alertmanager.convert(doc, source, received, opts, _EXTRA, body)
    if isinstance(doc, dict) and ("ruleName" in doc or "ruleId" in doc):
        return each([doc], lambda d: _legacy(d, source, received, opts))
    raise FieldError(
        "alerts", "expected a Grafana alerting webhook: an object with 'alerts' (or a legacy 'ruleName')"
    )


def _legacy(doc: dict[str, Any], source: str, received: float, opts: alertmanager.AlertOptions) -> Event:
    rule = text(doc, "ruleName") or text(doc, "ruleId", required=True)
    state = doc.get("state")
    if not isinstance(state, str) or state not in _LEGACY_STATES:
        got = repr(state)[:80]
        raise FieldError("state", f"must be one of {', '.join(_LEGACY_STATES)}, got {got}")
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict):
        raise FieldError("tags", "must be an object")
    severity = _LEGACY_STATES[state]
    if severity is None:
        raw = tags.get(opts.severity_label)
        table = opts.severity_map or alertmanager.SEVERITIES
        severity = table.get(str(raw).lower(), opts.default_severity) if raw else opts.default_severity
    host = next((str(tags[k])[:256] for k in opts.host_labels if tags.get(k)), "grafana")
    resource = next((str(tags[k])[:256] for k in opts.resource_labels if tags.get(k)), "")
    fp = f"grafana:rule:{text(doc, 'ruleId') or rule}:{fingerprint(host, resource, rule)}"
    attrs: dict[str, Any] = {"state": state, "tags": tags}
    for key in ("ruleUrl", "evalMatches", "imageUrl", "dashboardId", "panelId", "orgId"):
        if doc.get(key) not in (None, "", []):
            attrs[key] = doc[key]
    message = text(doc, "message") or text(doc, "title") or rule
    return Event(
        new_id(),
        received,
        received,
        source,
        host,
        rule,
        severity,
        resource,
        message[:16384],
        attrs,
        fp,
    )
