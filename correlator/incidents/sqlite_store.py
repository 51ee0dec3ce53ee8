"""SQLite incident store (its own file beside the event store, WAL, versioned migrations on open).

Incidents change far less often than events arrive, so each save is one small transaction.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from correlator.incidents.lifecycle import Changes
from correlator.incidents.model import Incident, LogEntry
from correlator.incidents.store import COMMIT_SET, WRITES, IncidentPage, IncidentQuery, Rows, rows
from correlator.store.checkpoint import WalCheckpointer
from correlator.store.query import Where, split_page
from correlator.store.sqlite import SqliteFile, transaction

MIGRATIONS: list[str] = [
    # 1: incidents and their timeline (events, comments, audited changes)
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        host TEXT NOT NULL,
        service TEXT NOT NULL,
        major INTEGER NOT NULL,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX incidents_active_key ON incidents(key)
        WHERE status IN ('new', 'acknowledged', 'in_progress', 'on_hold');
    CREATE INDEX incidents_status ON incidents(status, id);
    CREATE INDEX incidents_host ON incidents(host, id);
    CREATE INDEX incidents_opened ON incidents(opened_at);
    CREATE TABLE incident_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX incident_log_incident ON incident_log(incident_id, seq);
    """,
    # 2: the token of the last commit written (IncidentStore.write)
    """
    CREATE TABLE incident_commit (one INTEGER PRIMARY KEY CHECK (one = 1), token INTEGER NOT NULL);
    INSERT INTO incident_commit VALUES (1, 0);
    """,
    # 3: one active incident per key is kept by the only writer, not by an index (docs/architecture.md
    # "The per-event path"): its entry at a random place was the dearest part of opening an incident
    """
    DROP INDEX IF EXISTS incidents_active_key;
    """,
]

# Rows per INSERT statement: a batch goes in chunks of these sizes, largest first, so each table has
# at most nine statements to prepare (the connection caches them) and a storm's commit of 500
# incidents and 1,000 timeline rows runs a dozen statements, not 1,500. executemany stepped once per
# row, each step a thread hand-over of the GIL and an AUTOINCREMENT write-back. (256 incident rows
# bind 2,560 values; SQLite allows 32,766 since 3.32.)
_CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)


@functools.cache
def _many_rows(insert: str, size: int) -> str:
    """`insert` (INSERT ... VALUES (?, ...)) with `size` rows of placeholders."""
    row = insert[insert.index(" VALUES ") + 8 :]
    return insert + f", {row}" * (size - 1)


def _chunks(insert: str, batch: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """The statements writing `batch` in order, each with its rows' values in one flat list."""
    start = 0
    for size in _CHUNKS:
        while len(batch) - start >= size:
            values = list(chain.from_iterable(batch[start : start + size]))
            yield _many_rows(insert, size), values
            start += size


async def _put(db: aiosqlite.Connection, r: Rows) -> None:
    """Write `r` inside the caller's transaction: updates first (store.py WRITES), then the inserts."""
    update, insert, log = WRITES
    if r.dirty:
        await db.executemany(update, r.dirty)
    for sql, batch in ((insert, r.new), (log, r.log)):
        for chunk_sql, values in _chunks(sql, batch):
            await db.execute(chunk_sql, values)


class SqliteIncidentStore(SqliteFile):
    def __init__(self, path: Path) -> None:
        # 16 KiB pages (a new file's; an existing one keeps its own): a storm's commit writes a page
        # per host it opens incidents for, all over the host index, and the WAL's cost goes by pages
        # more than by bytes. WAL checkpoints run beside the writer (correlator/store/checkpoint.py)
        # every 4 MiB, SQLite's default interval: in the commit that crossed it, each one held up the
        # runner waiting for that commit.
        pragmas = (
            "page_size=16384",
            "wal_autocheckpoint=0",
            "journal_size_limit=16777216",
            "foreign_keys=ON",
            "cache_size=-65536",
        )
        super().__init__(path, MIGRATIONS, pragmas, "incident store")
        self.checkpoints = WalCheckpointer(path, 4 << 20, 16 << 20, "incidents", self.autocheckpoint)
        # One transaction at a time on the one connection: an id reservation made while a commit's
        # transaction is open would otherwise join it, and be undone with it.
        self._writing = asyncio.Lock()
        # People's reads (get, timeline, query) on a connection of their own, a WAL reader: on the
        # writing one they would run inside a commit being retried, and see rows its failing
        # COMMIT then rolls back, or wait behind it for as long as a full disk lasts.
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        await super().open()
        self.checkpoints.open()
        try:
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA query_only=ON")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self.checkpoints.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await super().close()

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("incident store is not open")
        return self._reader

    async def save(self, changes: Changes) -> None:
        db = self.db
        async with self._writing, transaction(db, "BEGIN IMMEDIATE"):
            if changes.new:
                # The ids are given here, under the write lock (BEGIN IMMEDIATE), as AUTOINCREMENT
                # would: one statement for the batch, where an insert each (and an update for the
                # body, which holds the id) cost two thread round trips per incident in a storm.
                next_id = await self.last_id() + 1
                for n, inc in enumerate(changes.new):
                    inc.id = next_id + n
            await _put(db, rows(changes))

    async def write(self, r: Rows, retry: bool = False) -> None:
        db = self.db
        async with self._writing, transaction(db, "BEGIN IMMEDIATE"):
            if retry:
                [(stored,)] = await db.execute_fetchall("SELECT token FROM incident_commit")
                if stored == r.token:
                    return
            await _put(db, r)
            await db.execute(COMMIT_SET, (r.token,))
        await self.checkpoints.wrote()

    async def reserve_ids(self, ceiling: int) -> None:
        db = self.db
        async with self._writing, transaction(db, "BEGIN IMMEDIATE"):
            # sqlite_sequence is an ordinary table; its row appears with the first insert.
            cur = await db.execute(
                "UPDATE sqlite_sequence SET seq = MAX(?, (SELECT COALESCE(MAX(id), 0) FROM incidents))"
                " WHERE name = 'incidents'",
                (ceiling,),
            )
            if cur.rowcount == 0:
                await db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('incidents', ?)", (ceiling,))

    async def last_id(self) -> int:
        last = list(
            await self.db.execute_fetchall(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0),"
                " COALESCE((SELECT MAX(id) FROM incidents), 0)"
            )
        )
        return int(max(last[0]))

    async def load_unclosed(self) -> list[Incident]:
        rows = await self.db.execute_fetchall(
            "SELECT body FROM incidents WHERE status <> 'closed' ORDER BY id"
        )
        return [Incident.from_doc(orjson.loads(r[0])) for r in rows]

    async def latest_for_keys(self, keys: list[str]) -> list[Incident]:
        rows = await self.db.execute_fetchall(
            "SELECT body FROM incidents WHERE id IN (SELECT MAX(id) FROM incidents"
            " WHERE key IN (SELECT value FROM json_each(?)) GROUP BY key)",
            (orjson.dumps(keys).decode(),),
        )
        return [Incident.from_doc(orjson.loads(r[0])) for r in rows]

    async def get(self, incident_id: int) -> Incident | None:
        rows = list(
            await self.reader.execute_fetchall("SELECT body FROM incidents WHERE id = ?", (incident_id,))
        )
        return Incident.from_doc(orjson.loads(rows[0][0])) if rows else None

    async def timeline(self, incident_id: int) -> list[LogEntry]:
        rows = await self.reader.execute_fetchall(
            "SELECT seq, at, actor, action, detail FROM incident_log WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        )
        return [
            LogEntry(at, actor, action, orjson.loads(d), None, incident_id, seq)
            for seq, at, actor, action, d in rows
        ]

    async def query(self, q: IncidentQuery) -> IncidentPage:
        w = Where(postgres=False)
        w.among("status", q.statuses).among("priority", q.priorities)
        w.eq("host", q.host).eq("service", q.service).eq("key", q.key)
        w.eq("major", None if q.major is None else int(q.major)).cmp("opened_at", ">=", q.since)
        w.cmp("opened_at", "<", q.until).eq("json_extract(body, '$.assignment_group')", q.group)
        sql, args = w.page("SELECT id, body FROM incidents", "id", q.cursor, q.limit)
        rows, more = split_page(list(await self.reader.execute_fetchall(sql, args)), q.limit)
        incidents = [Incident.from_doc(orjson.loads(body)) for _, body in rows]
        return IncidentPage(incidents, rows[-1][0] if more else None)

    async def ping(self) -> bool:
        try:
            await self.db.execute_fetchall("SELECT 1")
            return True
        except Exception:
            return False
