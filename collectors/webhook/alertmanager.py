"""Prometheus Alertmanager webhook (payload version 4): each alert one event, `resolved` a clear.

The fingerprint is Alertmanager's own (a hash of the alert's label set), so repeats and the
resolution of one alert share it; the event id also covers status and start/end time, so a
notification Alertmanager re-sends after a failed delivery is stored once. Grafana reuses this.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from collectors.webhook.formats import (
    Converter,
    Result,
    check_keys,
    each,
    severity_map_option,
    stable_id,
    text,
)
from correlator import door
from correlator.errors import ConfigError, FieldError
from correlator.event import Event, Severity, parse_time

SEVERITIES: dict[str, Severity] = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "major": Severity.MAJOR,
    "error": Severity.MAJOR,
    "high": Severity.MAJOR,
    "minor": Severity.MINOR,
    "average": Severity.MINOR,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "low": Severity.INFO,
    "none": Severity.INFO,
}

# The most alerts a body can hold and pass door.plain_json's bracket count: the body's object, its
# alerts array and two per alert.
_PLAIN_ALERTS = (door.MAX_DEPTH - 2) // 2
# The most an alert's attributes add to the text they are made of: `"annotations":{}` for an alert
# without annotations, with some to spare.
_ADDED_BYTES = 64
_NO_ANNOTATIONS: dict[str, Any] = {}
# A copied field with one of these values is left out. A constant: written in the test, the tuple
# and its empty object were made again for each field of each alert.
_ABSENT: tuple[object, ...] = (None, "", {})
_PORT = re.compile(r":\d+$")
_OPTIONS = {"format", "token", "hmac_secret", "hmac_header"}
OPTION_KEYS = {"host_labels", "resource_labels", "severity_label", "severity_map", "default_severity"}


@dataclass(frozen=True)
class AlertOptions:
    host_labels: tuple[str, ...] = ("host", "hostname", "instance", "node", "nodename", "job")
    resource_labels: tuple[str, ...] = ("resource", "device", "interface", "ifName", "mountpoint", "service")
    severity_label: str = "severity"
    severity_map: Mapping[str, Severity] | None = None
    default_severity: Severity = Severity.WARNING
    kind: str = "alertmanager"  # event type prefix of the fingerprint and the default host


def parse_options(raw: Mapping[str, Any], where: str, kind: str) -> AlertOptions:
    check_keys(raw, OPTION_KEYS | _OPTIONS, where)
    defaults = AlertOptions(kind=kind)
    host_labels = _labels(raw, "host_labels", where, defaults.host_labels)
    resource_labels = _labels(raw, "resource_labels", where, defaults.resource_labels)
    sev_label = raw.get("severity_label", "severity")
    if not isinstance(sev_label, str) or not sev_label:
        raise ConfigError(f"'{where}.severity_label': expected a label name, got {sev_label!r}")
    try:
        default_sev = Severity.parse(raw.get("default_severity", "warning"))
    except FieldError as e:
        raise ConfigError(f"'{where}.default_severity': {e.message}") from None
    table = severity_map_option(raw.get("severity_map"), where, SEVERITIES)
    return AlertOptions(host_labels, resource_labels, sev_label, table, default_sev, kind)


def make(raw: Mapping[str, Any], where: str) -> Converter:
    opts = parse_options(raw, where, "alertmanager")
    return lambda doc, source, received, body=None: convert(doc, source, received, opts, body=body)


def convert(
    doc: Any,
    source: str,
    received: float,
    opts: AlertOptions,
    extra: tuple[str, ...] = (),
    body: bytes | None = None,
) -> Result:
    if not isinstance(doc, dict):
        raise FieldError("", f"expected a JSON object ({opts.kind} webhook), got {type(doc).__name__}")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise FieldError("alerts", "expected an array of alerts")
    group = {k: doc[k] for k in ("receiver", "externalURL", "groupKey") if isinstance(doc.get(k), str)}
    copied = ("generatorURL", *extra)
    # The alerts of one rule evaluation share their startsAt: each distinct time is parsed once
    # per body. Only successes are kept, so a bad time is refused with its own message each time.
    times: dict[str, float] = {}
    # Every text and attribute of an alert's event is a value of the body (or a slice, or a
    # number's text), except the id (hex), the kind and the severity (configuration): so the
    # body's plain_json verdict holds for each event (docs/events.md). An alert brings at least
    # two brackets (itself, its labels): a larger group cannot pass the bracket count, and is not
    # scanned for it (measured: the scans of a 50-alert body cost more than its checks save).
    plain = body is not None and len(alerts) <= _PLAIN_ALERTS and door.plain_json(body)
    # A larger body is judged alert by alert instead: see `_flat_alerts`.
    flat = (
        _flat_alerts(copied)
        if not plain
        and body is not None
        and 2 * len(body) + _ADDED_BYTES <= door.MAX_EVENT_BYTES
        and door.plain_strings(body)
        else None
    )
    return each(alerts, lambda a: alert_event(a, source, received, opts, group, copied, times), plain, flat)


def _flat_alerts(copied: tuple[str, ...]) -> Callable[[dict[str, Any]], bool]:
    """The door's verdict for one converted alert of a body whose strings keep the text limits
    (`door.plain_strings`) and whose size, twice over plus `_ADDED_BYTES`, keeps the event size
    limit. When the alert's annotations and copied fields are text (its labels are, or it would
    not have converted), its event's attributes are an object of text and objects of text: two
    levels deep. Serialised, they are the alert's keys and texts and the group's, parts of the
    body each at most as long as written (orjson escapes no more than a sender must), plus what
    `alert_event` adds (`_ADDED_BYTES`); its message is one of those texts again."""

    def flat(a: dict[str, Any]) -> bool:
        for v in (a.get("annotations") or _NO_ANNOTATIONS).values():
            if type(v) is not str:
                return False
        for key in copied:
            v = a.get(key)
            if v is not None and type(v) is not str:
                return False
        return True

    return flat


def alert_event(
    a: Any,
    source: str,
    received: float,
    opts: AlertOptions,
    group: Mapping[str, str],
    copied: tuple[str, ...] = ("generatorURL",),
    times: dict[str, float] | None = None,
) -> Event:
    """One alert as an event; `copied`: the alert's fields kept as attributes when not empty."""
    if not isinstance(a, dict):
        raise FieldError("", "an alert must be a JSON object")
    labels = a.get("labels")
    if not isinstance(labels, dict):
        raise FieldError("labels", "must be an object of string label values")
    for v in labels.values():  # a plain loop: cheaper than all() over a generator, per alert
        if type(v) is not str:
            raise FieldError("labels", "must be an object of string label values")
    # Every label value is text here, so `text()`'s checks reduce to "present and not empty". It is
    # not called for alertname and summary on purpose: the two calls per alert measured 0.09-0.16 µs
    # more, 2-3% of the ~5.2 µs conversion (tests pin the same results as text()'s).
    alertname = labels.get("alertname")
    if not alertname:
        raise FieldError("labels.alertname", "is required and must be a non-empty string")
    annotations = a.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise FieldError("annotations", "must be an object")
    status = a.get("status")
    if status == "firing":
        raw_sev = labels.get(opts.severity_label)
        if raw_sev:
            table = opts.severity_map or SEVERITIES
            # The table's keys are in lower case, which lower() keeps: a value written so (most
            # are) is found as it is, without a lowered copy.
            severity = table.get(raw_sev) or table.get(raw_sev.lower(), opts.default_severity)
        else:
            severity = opts.default_severity
        when_key = "startsAt"
    elif status == "resolved":
        severity = Severity.CLEAR
        when_key = "endsAt"
    else:
        raise FieldError("status", f"must be 'firing' or 'resolved', got {status!r}")
    host = ""
    for k in opts.host_labels:
        host = labels.get(k, "")
        if host:
            host = host[:256]
            if k == "instance":
                name, colon, port = host.rpartition(":")
                if colon and port.isdecimal():
                    host = name  # what _PORT strips, without a regex per alert
                elif "\n" in host:
                    host = _PORT.sub("", host)  # `$` also matches before a final newline
            break
    resource = ""
    for k in opts.resource_labels:
        resource = labels.get(k, "")
        if resource:
            resource = resource[:256]
            break
    when = a.get(when_key)
    if not when:
        time_ = received
    elif times is not None and type(when) is str:
        cached = times.get(when)
        if cached is None:
            cached = times[when] = parse_time(when, when_key)
        time_ = cached
    else:
        time_ = parse_time(when, when_key)
    fp = a.get("fingerprint")
    if not isinstance(fp, str) or not fp:
        fp = hashlib.blake2b(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
    fingerprint = f"{opts.kind}:{fp}"
    message = annotations.get("summary")
    if type(message) is not str or not message:  # what text() returns at once; else its checks
        message = (
            text(annotations, "summary")
            or text(annotations, "description")
            or text(annotations, "message")
            or alertname
        )
    attrs: dict[str, Any] = {"status": status, "labels": labels, "annotations": annotations, **group}
    for key in copied:
        v = a.get(key)
        if v not in _ABSENT:
            attrs[key] = v
    starts = a.get("startsAt", "")
    ends = a.get("endsAt", "")
    ident = stable_id(
        fingerprint,
        status,
        starts if type(starts) is str else str(starts),
        ends if type(ends) is str else str(ends),
    )
    return Event(
        ident,
        time_,
        received,
        source,
        host or opts.kind,
        alertname,
        severity,
        resource,
        message[:16384],
        attrs,
        fingerprint,
    )


def _labels(raw: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = raw.get(key)
    if v is None:
        return default
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"'{where}.{key}': expected a list of label names")
    return tuple(v)
