"""Nagios / Icinga notifications, sent by a notification command as JSON or an HTML form.

Host and service problems map by state (CRITICAL -> critical, DOWN -> critical, ...); RECOVERY is
a clear with the same fingerprint. Acknowledgements, flapping and downtime notifications are info
events of their own type, so they never clear or overwrite the problem they are about.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.webhook.formats import Converter, Result, check_keys, each, text, timestamp
from correlator.errors import FieldError
from correlator.event import Event, Severity, new_id

SERVICE_STATES = {
    "CRITICAL": Severity.CRITICAL,
    "WARNING": Severity.WARNING,
    "UNKNOWN": Severity.MINOR,
    "OK": Severity.CLEAR,
}
HOST_STATES = {"DOWN": Severity.CRITICAL, "UNREACHABLE": Severity.MAJOR, "UP": Severity.CLEAR}
_ALIASES = {
    "host_name": ("host_name", "hostname", "host"),
    "service_description": ("service_description", "service_name", "service"),
    "notification_type": ("notification_type", "type"),
    "output": ("output", "service_output", "host_output"),
}
_KEYS = {"format", "token", "hmac_secret", "hmac_header"}


def make(raw: Mapping[str, Any], where: str) -> Converter:
    check_keys(raw, _KEYS, where)
    return lambda doc, source, received, body=None: convert(doc, source, received)


def convert(doc: Any, source: str, received: float) -> Result:
    items = doc if isinstance(doc, list) else [doc]
    return each(items, lambda d: notification_event(d, source, received))


def notification_event(d: Any, source: str, received: float) -> Event:
    if not isinstance(d, dict):
        raise FieldError("", "a notification must be a JSON object (or form fields)")
    host = _get(d, "host_name", required=True)
    service = _get(d, "service_description")
    ntype = _get(d, "notification_type", required=True).upper()
    kind = "nagios.service" if service else "nagios.host"
    if service:
        state = (text(d, "service_state") or text(d, "state")).upper()
        states = SERVICE_STATES
    else:
        state = (text(d, "host_state") or text(d, "state")).upper()
        states = HOST_STATES
    if ntype == "RECOVERY":
        severity = Severity.CLEAR
        type_ = kind
    elif ntype == "PROBLEM":
        if state not in states:
            field = "service_state" if service else "host_state"
            raise FieldError(field, f"must be one of {', '.join(states)}, got {state!r}")
        severity = states[state]
        type_ = kind
    else:
        severity = Severity.INFO
        type_ = f"{kind}.{ntype.lower()}"
    ts = d.get("timestamp")
    time_ = received if ts in (None, "") else timestamp(ts, "timestamp")
    message = _get(d, "output") or f"{service or host} {state or ntype}"
    used = {a for names in _ALIASES.values() for a in names}
    attrs = {k: v for k, v in d.items() if k not in used}
    attrs["notification_type"] = ntype
    return Event(new_id(), time_, received, source, host, type_, severity, service, message[:16384], attrs)


def _get(d: Mapping[str, Any], name: str, required: bool = False) -> str:
    for alias in _ALIASES[name]:
        v = text(d, alias, field=name)
        if v:
            return v[:256] if name != "output" else v
    if required:
        raise FieldError(name, "is required and must be a non-empty string")
    return ""
