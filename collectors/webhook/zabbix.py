"""Zabbix webhook media type (JSON built from Zabbix macros; the script is in docs/collectors/webhooks.md).

A problem and its recovery share a fingerprint built from the trigger id and host, so the
recovery clears the problem; the numeric severity ({EVENT.NSEVERITY}) wins over the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from collectors.webhook.formats import (
    Converter,
    Result,
    check_keys,
    each,
    severity_map_option,
    stable_id,
    text,
    timestamp,
)
from correlator.errors import FieldError
from correlator.event import Event, Severity, fingerprint, new_id

NSEVERITY = (
    Severity.INFO,
    Severity.INFO,
    Severity.WARNING,
    Severity.MINOR,
    Severity.MAJOR,
    Severity.CRITICAL,
)
SEVERITIES: dict[str, Severity] = {
    "not classified": Severity.INFO,
    "information": Severity.INFO,
    "warning": Severity.WARNING,
    "average": Severity.MINOR,
    "high": Severity.MAJOR,
    "disaster": Severity.CRITICAL,
}
_RESOLVED = {"resolved", "ok", "recovery"}
_KEYS = {"format", "token", "hmac_secret", "hmac_header", "severity_map"}


def make(raw: Mapping[str, Any], where: str) -> Converter:
    check_keys(raw, _KEYS, where)
    table = severity_map_option(raw.get("severity_map"), where, SEVERITIES)
    return lambda doc, source, received, body=None: convert(doc, source, received, table)


def convert(doc: Any, source: str, received: float, table: Mapping[str, Severity]) -> Result:
    items = doc if isinstance(doc, list) else [doc]
    return each(items, lambda d: problem_event(d, source, received, table))


def problem_event(d: Any, source: str, received: float, table: Mapping[str, Severity]) -> Event:
    if not isinstance(d, dict):
        raise FieldError("", "a Zabbix notification must be a JSON object")
    host = text(d, "host", required=True)
    type_ = text(d, "trigger_name") or text(d, "event_name", required=True)
    status = text(d, "event_status").lower()
    value = text(d, "event_value")
    resolved = status in _RESOLVED or value == "0"
    severity = Severity.CLEAR if resolved else _severity(d, table)
    trigger = text(d, "trigger_id")
    fp = f"zabbix:{trigger}:{host}" if trigger else fingerprint(host, text(d, "item_key"), type_)
    time_ = _time(d, "event_recovery" if resolved else "event", received)
    event_id = text(d, "event_id")
    if event_id and status != "update":
        ident = stable_id("zabbix", event_id, "resolved" if resolved else "problem")
    else:
        ident = new_id()  # acknowledgements and updates are several per event
    attrs = {k: v for k, v in d.items() if k not in ("host", "event_name", "trigger_name")}
    message = text(d, "event_name") or type_
    if text(d, "event_opdata"):
        message += f" ({text(d, 'event_opdata')})"
    return Event(
        ident, time_, received, source, host, type_, severity, text(d, "item_key"), message, attrs, fp
    )


def _severity(d: Mapping[str, Any], table: Mapping[str, Severity]) -> Severity:
    n = d.get("event_nseverity")
    if n not in (None, ""):
        try:
            i = int(n)
        except (ValueError, TypeError, OverflowError):
            i = -1
        if not 0 <= i < len(NSEVERITY):
            raise FieldError("event_nseverity", f"must be 0-5, got {repr(n)[:40]}")
        return NSEVERITY[i]
    name = text(d, "event_severity").lower()
    if not name:
        return Severity.WARNING
    sev = table.get(name)
    if sev is None:
        raise FieldError("event_severity", f"unknown Zabbix severity {name!r}; known: {', '.join(table)}")
    return sev


def _time(d: Mapping[str, Any], prefix: str, received: float) -> float:
    """`<prefix>_timestamp` (epoch or ISO) or Zabbix's `<prefix>_date` '2026.11.30' + `_time` (as UTC)."""
    ts = d.get(f"{prefix}_timestamp")
    if ts not in (None, ""):
        return timestamp(ts, f"{prefix}_timestamp")
    date, clock = text(d, f"{prefix}_date"), text(d, f"{prefix}_time")
    if not date or not clock:
        return received
    try:
        dt = datetime.strptime(f"{date} {clock}", "%Y.%m.%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise FieldError(
            f"{prefix}_date", f"expected YYYY.MM.DD and HH:MM:SS, got {date!r} {clock!r}"
        ) from None
    return dt.timestamp()
