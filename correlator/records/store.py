"""The record store shared by Change and Problem management: JSON documents with a state column,
an audit log per record, and the incident occurrences that problem detection counts.

SQLite (data_dir/records.db) by default; a `postgresql://` DSN (changes.dsn, else storage.dsn) selects
PostgreSQL. Records change rarely (people, windows), so each save is one transaction; the occurrences of a
pipeline batch's incident openings are added together, in one.

Each record has a version, 1 when inserted and one more at each save. Several processes may share the
store (the cluster, docs/cluster.md), each holding copies of the records, so a save names the version
its copy was read at and is refused (RecordConflict) when the stored one moved on: the writer reads the
record again and applies its edit to that, rather than overwriting another process's edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from prometheus_client.metrics import Counter

from correlator import errors

Kind = Literal["changes", "problems", "known_errors"]
KINDS: tuple[Kind, ...] = ("changes", "problems", "known_errors")


CONFLICTS = Counter(
    "correlator_record_conflicts_total",
    "Record saves refused because another process saved the record since it was read, by kind and"
    " what the writer did (reapplied: to the stored version and saved; nothing_left: the edit found nothing"
    " to do on the stored version, nothing saved; refused: the edit no longer applied or the"
    " attempts ran out)",
    ["kind", "outcome"],
)


class RecordConflict(errors.Conflict):
    """The stored record's version is not the one the save names: another process saved it since."""

    def __init__(self, kind: Kind, record_id: int, version: int) -> None:
        super().__init__(f"{kind} record {record_id} was saved by another process since version {version}")
        self.kind = kind
        self.record_id = record_id
        self.version = version


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
        self,
        kind: Kind,
        record_id: int,
        state: str,
        doc: dict[str, Any],
        at: float,
        log: list[LogEntry],
        version: int = 0,
    ) -> int:
        """Insert (record_id 0: returns the new id, stored at version 1) or update a record and append
        its log, atomically. An update names the `version` its copy was read at; the stored record
        becomes `version + 1`, or RecordConflict (nothing written) when it is no longer at `version`."""
        ...

    async def get(self, kind: Kind, record_id: int) -> dict[str, Any] | None:
        """The record's document with its `id` and `version`."""
        ...

    async def records(
        self, kind: Kind, states: tuple[str, ...] = (), limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Newest first, ids below `cursor`; documents with their `id` and `version`."""
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
