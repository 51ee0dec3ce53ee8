"""The `incidents:` section of correlator.yaml, validated into typed settings with file:line errors.

config.py keeps the section raw; `parse_settings` checks it once at start-up (docs/incidents.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from correlator.errors import ConfigError
from correlator.incidents.model import DEFAULT_MATRIX, PRIORITIES
from correlator.notify.incidents import parse_targets
from correlator.notify.targets import NOTIFY_KINDS as NOTIFY_KINDS
from correlator.notify.targets import NotifyTarget as NotifyTarget
from correlator.notify.targets import duration as _duration
from correlator.notify.targets import fail as _fail
from correlator.notify.targets import known as _known
from correlator.notify.targets import pos as _pos


@dataclass(frozen=True, slots=True)
class EscalationStep:
    after: float  # seconds after the incident opened (or reopened)
    level: int
    until: str  # 'acknowledged' or 'resolved': the step is skipped once the incident got there
    notify: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    dsn: str | None = None  # postgresql://... ; None keeps SQLite (data_dir/incidents.db)
    reopen_window: float = 3600.0
    close_after: float = 86400.0
    timeline_limit: int = 500
    matrix: tuple[tuple[str, ...], ...] = DEFAULT_MATRIX
    major_priority: str | None = "P1"
    escalation: dict[str, tuple[EscalationStep, ...]] = field(default_factory=dict)
    notify: dict[str, NotifyTarget] = field(default_factory=dict)

    def priority(self, impact: int, urgency: int) -> str:
        return self.matrix[impact - 1][urgency - 1]


_KEYS = {
    "dsn",
    "reopen_window",
    "close_after",
    "timeline_limit",
    "priority_matrix",
    "major_priority",
    "escalation",
    "notify",
}
_STEP_KEYS = {"after", "level", "until", "notify"}


def parse_settings(raw: Mapping[str, Any] | None) -> IncidentSettings:
    raw = raw or {}
    _known(raw, _KEYS, "incidents")
    kw: dict[str, Any] = {}
    if raw.get("dsn") is not None:
        dsn = raw["dsn"]
        if not isinstance(dsn, str) or not dsn.startswith(("postgres://", "postgresql://")):
            _fail(raw, "dsn", "incidents.dsn", "expected a PostgreSQL DSN like postgresql://host/db or null")
        kw["dsn"] = dsn
    for key in ("reopen_window", "close_after"):
        if key in raw:
            kw[key] = _duration(raw, key, f"incidents.{key}")
    if "timeline_limit" in raw:
        n = raw["timeline_limit"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            _fail(raw, "timeline_limit", "incidents.timeline_limit", "expected a whole number >= 1")
        kw["timeline_limit"] = n
    if "priority_matrix" in raw:
        kw["matrix"] = _matrix(raw)
    if "major_priority" in raw:
        mp = raw["major_priority"]
        if mp is not None and mp not in PRIORITIES:
            _fail(raw, "major_priority", "incidents.major_priority", "expected one of P1..P5 or null")
        kw["major_priority"] = mp
    targets = parse_targets(raw.get("notify") or {})
    kw["notify"] = targets
    kw["escalation"] = _escalation(raw.get("escalation") or {}, targets)
    return IncidentSettings(**kw)


def _matrix(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    m = raw["priority_matrix"]
    ok = (
        isinstance(m, list)
        and len(m) == 3
        and all(isinstance(r, list) and len(r) == 3 and all(p in PRIORITIES for p in r) for r in m)
    )
    if not ok:
        _fail(
            raw,
            "priority_matrix",
            "incidents.priority_matrix",
            "expected 3 rows (impact 1..3) of 3 priorities (urgency 1..3) such as [P1, P2, P3]",
        )
    return tuple(tuple(r) for r in m)


def _escalation(raw: Any, targets: dict[str, NotifyTarget]) -> dict[str, tuple[EscalationStep, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{_pos(raw)}'incidents.escalation': expected a mapping of priority to steps")
    out: dict[str, tuple[EscalationStep, ...]] = {}
    for prio, steps in raw.items():
        where = f"incidents.escalation.{prio}"
        if prio not in PRIORITIES:
            _fail(raw, prio, where, "expected a priority P1..P5 as the key")
        if not isinstance(steps, list):
            _fail(raw, prio, where, "expected a list of steps like {after: 5m, notify: [oncall]}")
        parsed: list[EscalationStep] = []
        for i, step in enumerate(steps, start=1):
            sw = f"{where}[{i}]"
            if not isinstance(step, Mapping) or "after" not in step:
                raise ConfigError(f"{_pos(step)}'{sw}': expected a mapping with 'after'")
            _known(step, _STEP_KEYS, sw)
            until = step.get("until", "acknowledged")
            if until not in ("acknowledged", "resolved"):
                _fail(step, "until", f"{sw}.until", "expected 'acknowledged' or 'resolved'")
            notify = step.get("notify", [])
            if not isinstance(notify, list) or any(n not in targets for n in notify):
                _fail(step, "notify", f"{sw}.notify", f"expected a list of targets from incidents.notify: "
                      f"{', '.join(targets) or '(none configured)'}")  # fmt: skip
            level = step.get("level", i)
            if isinstance(level, bool) or not isinstance(level, int) or level < 1:
                _fail(step, "level", f"{sw}.level", "expected a whole number >= 1")
            after = _duration(step, "after", f"{sw}.after")
            parsed.append(EscalationStep(after, level, until, tuple(notify)))
        parsed.sort(key=lambda s: (s.after, s.level))
        out[prio] = tuple(parsed)
    return out
