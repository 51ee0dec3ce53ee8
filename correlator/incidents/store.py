"""Where incidents and their timelines are kept: the protocol, its query type and the back-end choice.

SQLite (data_dir/incidents.db) is the default; `incidents.dsn: postgresql://...` selects PostgreSQL.
Both keep each incident as one JSON document beside the columns that are filtered on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from correlator.incidents.lifecycle import Changes
from correlator.incidents.model import Incident, LogEntry


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    host: str | None = None
    service: str | None = None
    key: str | None = None
    major: bool | None = None
    since: float | None = None  # opened at or after
    limit: int = 50
    cursor: int | None = None  # continue below this id (newest first)
    until: float | None = None  # opened before
    group: str | None = None  # assignment group (in the document: no column of its own)


@dataclass(frozen=True, slots=True)
class IncidentPage:
    incidents: list[Incident]
    next_cursor: int | None


class IncidentStore(Protocol):
    async def open(self) -> None:
        """Connect and apply the schema migrations this version knows."""
        ...

    async def save(self, changes: Changes) -> None:
        """One transaction: insert new incidents (assigning their ids), update the rest, add log entries."""
        ...

    async def load_unclosed(self) -> list[Incident]: ...

    async def latest_for_keys(self, keys: list[str]) -> list[Incident]:
        """The newest incident of each key, whatever its status (a shared store: docs/cluster.md)."""
        ...

    async def get(self, incident_id: int) -> Incident | None: ...

    async def timeline(self, incident_id: int) -> list[LogEntry]: ...

    async def query(self, q: IncidentQuery) -> IncidentPage: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
