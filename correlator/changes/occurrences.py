"""Calendar occurrences as change records: the record a window's occurrence becomes, and which
not-yet-started records a new calendar no longer backs (service.py acts on both).

Plain functions of the calendar, the records and a time, so the reload decision is tested
without a store or a daemon.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from correlator.changes.calendar import Calendar, Window
from correlator.changes.model import Change, State

# What a window copies into its occurrences: a record differing in one of them no longer matches it.
_COPIED = ("title", "cis", "services", "risk", "implementer", "description", "policy", "dependents_policy")


@dataclass(frozen=True, slots=True)
class Stale:
    change: Change
    window: str
    why: str  # "removed" or "changed"


def occurrence(w: Window, start: float, end: float, now: float) -> Change:
    """The approved change record of the occurrence [start, end) of `w`, created at `now`."""
    return Change(
        w.title, start, end, list(w.cis), list(w.services), State.APPROVED, w.risk, w.implementer,
        w.description, w.policy, w.dependents_policy, calendar=key(w.name, start),
        created_at=now, updated_at=now,
    )  # fmt: skip


def key(window: str, start: float) -> str:
    """`window@start-epoch`: an occurrence is created once per key (across restarts too)."""
    return f"{window}@{start:.0f}"


def window_of(c: Change) -> str | None:
    return c.calendar.rsplit("@", 1)[0] if c.calendar else None


def stale(changes: Iterable[Change], calendar: Calendar, now: float) -> list[Stale]:
    """Calendar records not started yet (approved, start still ahead) whose window the calendar no
    longer has, or has with other times or fields. Records in progress or finished are never stale:
    a window that has begun runs to its end as it was created."""
    windows = {w.name: w for w in calendar.windows}
    out = []
    for c in changes:
        name = window_of(c)
        if name is None or c.state is not State.APPROVED or c.start <= now:
            continue
        w = windows.get(name)
        if w is None:
            out.append(Stale(c, name, "removed"))
        elif not w.occurs_at(c.start, c.end) or not _same(c, occurrence(w, c.start, c.end, now)):
            out.append(Stale(c, name, "changed"))
    return out


def _same(a: Change, b: Change) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _COPIED)
