"""Where incidents and their timelines are kept: the protocol, its query type and the back-end choice.

SQLite (data_dir/incidents.db) is the default; `incidents.dsn: postgresql://...` selects PostgreSQL.
Both keep each incident as one JSON document beside the columns that are filtered on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from correlator.incidents.lifecycle import Changes
from correlator.incidents.model import Incident, LogEntry, Status


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


@dataclass(frozen=True, slots=True)
class Rows:
    """A change batch as the rows it writes, taken when the batch is made: the incidents go on
    changing in memory while the commit waits its turn (docs/incidents.md "Commits")."""

    dirty: list[tuple[Any, ...]]  # incident columns, the id last
    new: list[tuple[Any, ...]]  # incident columns, the id last
    log: list[tuple[Any, ...]]  # (incident_id, at, actor, action, detail JSON)
    # Stored with the rows (incident_commit), so a retry after a commit whose outcome was not
    # heard (a connection lost during COMMIT) finds it already stored and writes nothing twice.
    token: int = 0


# Enum `.value` is a descriptor call: a dict lookup is cheaper once per stored incident.
_STATUS_TEXT = {s: s.value for s in Status}


def _columns(inc: Incident) -> tuple[Any, ...]:
    return (
        inc.key,
        _STATUS_TEXT[inc.status],
        inc.priority,
        inc.host,
        inc.service,
        inc.major,
        inc.opened_at,
        inc.updated_at,
        inc.to_json(),
        inc.id,
    )


def rows(changes: Changes, token: int = 0) -> Rows:
    """The rows of `changes`, whose new incidents have their ids; the log entries are bound to
    their incidents' ids here (and let go of the incident objects)."""
    log: list[tuple[Any, ...]] = []
    append, dumps = log.append, orjson.dumps
    for e in changes.entries:
        inc = e.incident
        if inc is not None:
            e.incident_id = inc.id
            e.incident = None
        text = e.text
        append((e.incident_id, e.at, e.actor, e.action, dumps(e.detail).decode() if text is None else text))
    return Rows(
        [_columns(inc) for inc in changes.dirty.values()], [_columns(inc) for inc in changes.new], log, token
    )


# The statements of `put`, in the order they run: updates first, as a resolved incident frees its
# key before a new one takes it. An explicit id moves SQLite's sqlite_sequence past it.
WRITES = (
    "UPDATE incidents SET key=?, status=?, priority=?, host=?, service=?, major=?, opened_at=?,"
    " updated_at=?, body=? WHERE id=?",
    "INSERT INTO incidents(key, status, priority, host, service, major, opened_at, updated_at, body, id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO incident_log(incident_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
)
# The token of the last commit `write` stored (one row), set in the same transaction as its rows.
COMMIT_SET = "UPDATE incident_commit SET token = ?"


async def put(
    executemany: Callable[[str, list[tuple[Any, ...]]], Awaitable[Any]],
    r: Rows,
    statements: tuple[str, ...] = WRITES,
) -> None:
    """Write `r` with a connection's `executemany`, inside the caller's transaction."""
    for sql, batch in zip(statements, (r.dirty, r.new, r.log), strict=True):
        if batch:
            await executemany(sql, batch)


class IncidentStore(Protocol):
    async def open(self) -> None:
        """Connect and apply the schema migrations this version knows."""
        ...

    async def save(self, changes: Changes) -> None:
        """One transaction: insert new incidents (assigning their ids), update the rest, add log
        entries. The path of a shared store (docs/cluster.md), where other processes take ids too."""
        ...

    async def write(self, rows: Rows, retry: bool = False) -> None:
        """One transaction, as `save`, of rows whose incidents already have their ids (given by the
        only writer from those reserved with `reserve_ids`), recording `rows.token`. `retry`: an
        earlier try of these rows failed, perhaps after it was stored (the connection lost during
        COMMIT); if the stored token is theirs, nothing is written."""
        ...

    async def last_id(self) -> int:
        """The highest incident id ever taken or reserved: the id sequence's or the largest in the table."""
        ...

    async def reserve_ids(self, ceiling: int) -> None:
        """Store `ceiling` as the id sequence's value in a transaction of its own, so `last_id` is at
        least it from then on, after a crash too (never below the largest id stored)."""
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
