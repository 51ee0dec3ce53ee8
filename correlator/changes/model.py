"""The change record and its enforced state machine (requested -> approved -> in_progress -> ...).

Plain data kept as one JSON document in the record store; the API shows `to_api()`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from correlator import errors
from correlator.event import iso


class State(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# completed -> failed only when incidents are linked to the change (checked by the service).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.REQUESTED: frozenset({State.APPROVED, State.CANCELLED}),
    State.APPROVED: frozenset({State.IN_PROGRESS, State.CANCELLED}),
    State.IN_PROGRESS: frozenset({State.COMPLETED, State.FAILED}),
    State.COMPLETED: frozenset({State.FAILED}),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}
# The window covers events only in these states.
COVERING = frozenset({State.APPROVED, State.IN_PROGRESS})
# Actions of the API and CLI and the state each leads to.
ACTIONS: dict[str, State] = {
    "approve": State.APPROVED,
    "start": State.IN_PROGRESS,
    "complete": State.COMPLETED,
    "fail": State.FAILED,
    "cancel": State.CANCELLED,
}
POLICIES = ("suppress", "downgrade", "tag", "ignore")
RISKS = ("low", "medium", "high")


class IllegalTransition(errors.IllegalTransition):
    """The change's state does not allow the asked action (HTTP 409)."""


def human_id(n: int) -> str:
    return f"CHG-{n:06d}"


def parse_human_id(text: str) -> int | None:
    """'CHG-000012', 'chg-12' or '12' -> 12; None otherwise."""
    s = text.strip()
    if s[:4].upper() == "CHG-":
        s = s[4:]
    return int(s) if s.isascii() and s.isdigit() and 0 < len(s) <= 12 else None  # not "²"


@dataclass(slots=True)
class Change:
    """One change. Times are UTC epoch seconds; `id` is 0 until the store assigns one."""

    title: str
    start: float  # planned window [start, end)
    end: float
    cis: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    state: State = State.REQUESTED
    risk: str = "low"
    implementer: str = ""
    description: str = ""
    policy: str | None = None  # on its own CIs: suppress, downgrade, tag, ignore; None = settings default
    dependents_policy: str | None = None  # on CIs depending on them
    calendar: str | None = None  # "<window name>@<start epoch>" for occurrences of a calendar window
    # Cancelled by a calendar reload (its window removed or changed): unlike a person's cancel, it
    # does not keep the window from creating that occurrence again.
    withdrawn: bool = False
    id: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None  # completed, failed or cancelled
    incidents: list[int] = field(default_factory=list)  # incidents linked as suspected caused
    version: int = 0  # the stored version this copy was read or saved at (its own column, not the body)

    @property
    def human_id(self) -> str:
        return human_id(self.id)

    def to_doc(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _DOC_FIELDS}
        d["state"] = self.state.value
        d["cis"] = list(self.cis)
        d["services"] = list(self.services)
        d["incidents"] = list(self.incidents)
        return d

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Change:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["state"] = State(kwargs["state"])
        return cls(**kwargs)

    def to_api(self) -> dict[str, Any]:
        d = self.to_doc()
        d["id"] = self.human_id
        d["incidents"] = [f"INC-{n:06d}" for n in self.incidents]
        for name in ("start", "end", "created_at", "updated_at", "started_at", "finished_at"):
            d[name] = iso(d[name]) if d[name] is not None else None
        return d


_DOC_FIELDS = tuple(f.name for f in dataclasses.fields(Change) if f.name != "version")
