"""The record store shared by Change and Problem management: JSON documents with a state column,
an audit log per record, and the incident occurrences that problem detection counts.

SQLite (data_dir/records.db) by default; a `postgresql://` DSN (changes.dsn, else storage.dsn) selects
PostgreSQL. Records change rarely (people, windows), so each save is one transaction; the occurrences of a
pipeline batch's incident openings are added together, in one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

Kind = Literal["changes", "problems", "known_errors"]
KINDS: tuple[Kind, ...] = ("changes", "problems", "known_errors")


@dataclass(slots=True)
class LogEntry:
    """One audited line of a record: who did what, when (token name, 'system', 'calendar', ...)."""

    at: float
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


class Occurrence(NamedTuple):
    """The `occurrence`-th opening (0: the first, then one per reopening) of an incident.
    A named tuple: an alert storm makes one per alert, and a frozen dataclass costs three times as
    much to build."""

    signature: str
    incident_id: int
    occurrence: int
    at: float


@dataclass(frozen=True, slots=True)
class Trend:
    signature: str
    count: int
    last_at: float


class RecordStore(Protocol):
    async def open(self) -> None:
        """Connect and apply the schema migrations this version knows."""
        ...

    async def save(
        self, kind: Kind, record_id: int, state: str, doc: dict[str, Any], at: float, log: list[LogEntry]
    ) -> int:
        """Insert (record_id 0: returns the new id) or update a record and append its log, atomically."""
        ...

    async def get(self, kind: Kind, record_id: int) -> dict[str, Any] | None: ...

    async def records(
        self, kind: Kind, states: tuple[str, ...] = (), limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Newest first, ids below `cursor`."""
        ...

    async def changes_during(
        self, since: float, until: float, limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Changes whose span (started_at to finished_at once started, else the planned window)
        ends at or after `since` and starts before `until`; newest first, ids below `cursor`."""
        ...

    async def log(self, kind: Kind, record_id: int) -> list[LogEntry]: ...

    async def add_occurrences(self, occurrences: list[Occurrence]) -> set[tuple[int, int]]:
        """Record incident (re)openings under their signatures in one transaction; returns the
        (incident id, occurrence) pairs that were new (a batch delivered again after a crash adds none)."""
        ...

    async def occurrences_since(self, since: float) -> list[tuple[str, int, float]]:
        """(signature, incident id, at), oldest first."""
        ...

    async def trend(self, since: float, limit: int) -> list[Trend]:
        """Signatures with the most occurrences since `since`, most first."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
