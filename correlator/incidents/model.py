"""The incident record, its status state machine and the impact x urgency -> priority matrix.

Plain data: the lifecycle (lifecycle.py) changes it, the stores keep it as one JSON document beside
a few filter columns, and the API shows `to_api()`.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from dataclasses import dataclass, field
from typing import Any

import orjson

from correlator import errors
from correlator.event import iso


class Status(enum.StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE = frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ON_HOLD})

# Allowed status changes. Reopening (resolved -> new) is the only way back; closed is final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED}),
    Status.ACKNOWLEDGED: frozenset({Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED}),
    Status.IN_PROGRESS: frozenset({Status.ON_HOLD, Status.RESOLVED}),
    Status.ON_HOLD: frozenset({Status.IN_PROGRESS, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.NEW, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")

# ITIL's usual matrix: rows are impact 1..3, columns urgency 1..3.
DEFAULT_MATRIX: tuple[tuple[str, ...], ...] = (
    ("P1", "P2", "P3"),
    ("P2", "P3", "P4"),
    ("P3", "P4", "P5"),
)


class IllegalTransition(errors.IllegalTransition):
    """The incident's status does not allow the asked change (HTTP 409)."""

    def __init__(self, incident: Incident, action: str, allowed: str = "") -> None:
        extra = f"; {allowed}" if allowed else ""
        super().__init__(f"{incident.human_id} is {incident.status.value}: cannot {action}{extra}")
        self.incident = incident
        self.action = action


def human_id(n: int) -> str:
    return f"INC-{n:06d}"


def parse_human_id(text: str) -> int | None:
    """'INC-000123', 'inc-123' or '123' -> 123; None when it is neither."""
    s = text.strip()
    if s[:4].upper() == "INC-":
        s = s[4:]
    return int(s) if s.isascii() and s.isdigit() and 0 < len(s) <= 12 else None  # not "²"


@dataclass(slots=True)
class Incident:
    """One incident. Times are UTC epoch seconds; `id` is 0 until the store assigns one."""

    title: str
    opened_at: float
    impact: int = 3
    urgency: int = 3
    priority: str = "P5"
    id: int = 0
    description: str = ""
    host: str = ""  # the configuration item
    service: str = ""
    category: str = ""
    status: Status = Status.NEW
    assignment_group: str = ""
    assignee: str = ""
    key: str | None = None  # correlation key; None for incidents opened by hand without one
    rule: str = ""
    severity: str = "info"  # highest event severity seen
    event_count: int = 0
    first_occurrence: float | None = None
    last_occurrence: float | None = None
    updated_at: float = 0.0
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    closed_at: float | None = None
    reopened_at: float | None = None
    reopen_count: int = 0
    resolution_code: str = ""
    resolution_notes: str = ""
    major: bool = False
    escalation_level: int = 0
    next_escalation_at: float | None = None  # persisted deadline; recomputed from policy on start
    close_at: float | None = None  # when a resolved incident closes by itself
    problem_id: str | None = None  # links filled by Problem and Change management (later)
    change_id: str | None = None
    known_error_id: str | None = None  # attached by Problem management when a known error matches
    workaround: str = ""
    linked_events: int = 0  # event entries kept in the timeline (capped; event_count is not)

    @property
    def human_id(self) -> str:
        return human_id(self.id)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_doc(self) -> dict[str, Any]:
        """The stored form (epoch floats). Every field is a scalar, so no deep copy is needed."""
        d = dict(zip(_FIELD_NAMES, _FIELDS(self), strict=True))
        d["status"] = self.status.value
        return d

    def to_json(self) -> str:
        """`to_doc()` as JSON text, what the stores keep: orjson writes the dataclass itself (its
        fields in order, the status enum as its value), with no dict built first."""
        return orjson.dumps(self).decode()

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Incident:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["status"] = Status(kwargs["status"])
        return cls(**kwargs)

    def to_api(self) -> dict[str, Any]:
        d = self.to_doc()
        d["id"] = self.human_id
        for name in _TIME_FIELDS:
            value = d[name]
            d[name] = iso(value) if value is not None else None
        return d


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Incident))
_FIELDS = operator.attrgetter(*_FIELD_NAMES)  # all of them in one call, in _FIELD_NAMES order
_TIME_FIELDS = (
    "opened_at",
    "first_occurrence",
    "last_occurrence",
    "updated_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "reopened_at",
    "next_escalation_at",
    "close_at",
)


@dataclass(slots=True)
class LogEntry:
    """One timeline line: a linked event, a comment or an audited change (who, when, what)."""

    at: float
    actor: str  # token name, 'rule:<name>' or 'system'
    action: str  # event, open, update, ack, assign, comment, status, resolve, close, reopen, escalate, ...
    detail: dict[str, Any] = field(default_factory=dict)
    incident: Incident | None = None  # set while unsaved so a new incident's id reaches its entries
    incident_id: int = 0
    seq: int = 0
    # `detail` as stored (JSON text) when it was known as the entry was made: a storm's openings
    # share a few details, each encoded once (lifecycle.open_for_event), not once per incident.
    text: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
        }
