"""SQLite record store (data_dir/records.db, WAL, versioned migrations on open)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from correlator.records.store import KINDS, Kind, LogEntry, Occurrence, RecordConflict, Trend
from correlator.store.query import Where
from correlator.store.sqlite import SqliteFile, transaction

MIGRATIONS: list[str] = [
    # 1: one table per record kind, a shared audit log, problem-detection occurrences
    "\n".join(
        f"""
        CREATE TABLE {kind} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX {kind}_state ON {kind}(state, id);
        """
        for kind in KINDS
    )
    + """
    CREATE TABLE record_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        record_id INTEGER NOT NULL,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX record_log_record ON record_log(kind, record_id, seq);
    CREATE TABLE occurrences (
        incident_id INTEGER NOT NULL,
        occurrence INTEGER NOT NULL,
        signature TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (incident_id, occurrence)
    );
    CREATE INDEX occurrences_at ON occurrences(at);
    """,
    # 2: the span a change takes on a timeline (what it really took once started, else its planned
    # window), computed by SQLite from the document, so that a period's changes are one indexed query
    # (GET /api/v1/annotations) and the writers stay unaware of it.
    """
    ALTER TABLE changes ADD COLUMN span_start REAL GENERATED ALWAYS AS (
        COALESCE(json_extract(body, '$.started_at'), json_extract(body, '$.start'))) VIRTUAL;
    ALTER TABLE changes ADD COLUMN span_end REAL GENERATED ALWAYS AS (
        CASE WHEN json_extract(body, '$.started_at') IS NOT NULL AND json_extract(body, '$.finished_at') IS NOT NULL
        THEN json_extract(body, '$.finished_at') ELSE json_extract(body, '$.end') END) VIRTUAL;
    CREATE INDEX changes_span_end ON changes(span_end);
    """,
    # 3: a version per record (store.py): a save names the version it read and is refused when
    # another process saved since. Existing records start at 1, as a new one does.
    "\n".join(f"ALTER TABLE {kind} ADD COLUMN version INTEGER NOT NULL DEFAULT 1;" for kind in KINDS),
]

_ADD_OCCURRENCES = """
INSERT OR IGNORE INTO occurrences(incident_id, occurrence, signature, at)
SELECT value->>1, value->>2, value->>0, value->>3 FROM json_each(?)
RETURNING incident_id, occurrence
"""


class SqliteRecordStore(SqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, MIGRATIONS, (), "record store")

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
        assert kind in KINDS
        db = self.db
        body = orjson.dumps(doc).decode()
        async with transaction(db, "BEGIN IMMEDIATE"):
            if record_id:
                cur = await db.execute(
                    f"UPDATE {kind} SET state=?, updated_at=?, body=?, version=version+1"  # noqa: S608 - kind is fixed
                    " WHERE id=? AND version=?",
                    (state, at, body, record_id, version),
                )
                if cur.rowcount != 1:  # rolled back with the transaction: nothing written
                    raise RecordConflict(kind, record_id, version)
            else:
                cur = await db.execute(
                    f"INSERT INTO {kind}(state, updated_at, body) VALUES (?, ?, ?)",  # noqa: S608
                    (state, at, body),
                )
                assert cur.lastrowid is not None
                record_id = cur.lastrowid
            await db.executemany(
                "INSERT INTO record_log(kind, record_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
                [(kind, record_id, e.at, e.actor, e.action, orjson.dumps(e.detail).decode()) for e in log],
            )
        return record_id

    async def get(self, kind: Kind, record_id: int) -> dict[str, Any] | None:
        assert kind in KINDS
        rows = list(
            await self.db.execute_fetchall(f"SELECT body, version FROM {kind} WHERE id = ?", (record_id,))  # noqa: S608
        )
        return _doc(record_id, rows[0][0], rows[0][1]) if rows else None

    async def records(
        self, kind: Kind, states: tuple[str, ...] = (), limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        assert kind in KINDS
        w = Where(postgres=False).among("state", states)
        sql, args = w.page(f"SELECT id, body, version FROM {kind}", "id", cursor, limit, probe=False)  # noqa: S608
        rows = await self.db.execute_fetchall(sql, args)
        return [(i, _doc(i, body, v)) for i, body, v in rows]

    async def changes_during(
        self, since: float, until: float, limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        w = Where(postgres=False).cmp("span_end", ">=", since).cmp("span_start", "<", until)
        # Without INDEXED BY, SQLite walks the whole table in id order to honour ORDER BY ... LIMIT.
        select = "SELECT id, body, version FROM changes INDEXED BY changes_span_end"
        sql, args = w.page(select, "id", cursor, limit, probe=False)
        rows = await self.db.execute_fetchall(sql, args)
        return [(i, _doc(i, body, v)) for i, body, v in rows]

    async def log(self, kind: Kind, record_id: int) -> list[LogEntry]:
        rows = await self.db.execute_fetchall(
            "SELECT seq, at, actor, action, detail FROM record_log WHERE kind = ? AND record_id = ? ORDER BY seq",
            (kind, record_id),
        )
        return [LogEntry(at, actor, action, orjson.loads(d), seq) for seq, at, actor, action, d in rows]

    async def add_occurrences(self, occurrences: list[Occurrence]) -> set[tuple[int, int]]:
        if not occurrences:
            return set()
        # One statement (one transaction): SQLite unpacks the batch and returns the rows it inserted.
        payload = orjson.dumps([(o.signature, o.incident_id, o.occurrence, o.at) for o in occurrences])
        rows = await self.db.execute_fetchall(_ADD_OCCURRENCES, (payload,))
        return {(int(i), int(n)) for i, n in rows}

    async def occurrences_since(self, since: float) -> list[tuple[str, int, float]]:
        rows = await self.db.execute_fetchall(
            "SELECT signature, incident_id, at FROM occurrences WHERE at >= ? ORDER BY at", (since,)
        )
        return [(s, i, a) for s, i, a in rows]

    async def trend(self, since: float, limit: int) -> list[Trend]:
        rows = await self.db.execute_fetchall(
            "SELECT signature, COUNT(*), MAX(at) FROM occurrences WHERE at >= ?"
            " GROUP BY signature ORDER BY COUNT(*) DESC, MAX(at) DESC LIMIT ?",
            (since, limit),
        )
        return [Trend(s, n, a) for s, n, a in rows]

    async def ping(self) -> bool:
        try:
            await self.db.execute_fetchall("SELECT 1")
            return True
        except Exception:
            return False


def _doc(record_id: int, body: str, version: int) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(body)
    doc["id"] = record_id
    doc["version"] = version
    return doc
