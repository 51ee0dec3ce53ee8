"""SQLite event store (WAL, aiosqlite, one batched transaction per pipeline batch).

The whole event is kept as one orjson blob; the columns beside it exist only to be filtered on.
Schema versions are applied in order on open (PRAGMA user_version).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from correlator import metrics
from correlator.deadletter import Claim, DeadLetter, DeadLetterBusy, DeadLetterPage
from correlator.event import Event, dumps_events
from correlator.store import EventPage, EventQuery
from correlator.store.checkpoint import WalCheckpointer
from correlator.store.query import Where, split_page

MIGRATIONS: list[str] = [
    # 1: events
    """
    CREATE TABLE events (
        pos INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time REAL NOT NULL,
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        source TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX events_host ON events(host, pos);
    CREATE INDEX events_type ON events(type, pos);
    CREATE INDEX events_time ON events(time);
    """,
    # 2: de-duplication counters, so fold() can grow a stored event's repeat count idempotently
    """
    ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE events ADD COLUMN last_seen REAL;
    UPDATE events SET last_seen = time;
    """,
    # 3: the dead-letter path (correlator/deadletter.py): what the store or the journal could not take
    """
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        at REAL NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        error TEXT NOT NULL,
        raw TEXT NOT NULL
    );
    """,
    # 4: the ids of repeats de-duplication folded into a stored event, written with the fold, so
    # that `known` names them as it names stored ids: a batch delivered again after a crash would
    # otherwise store them anew, the fold already counted. `time` (the repeat's) for retention.
    """
    CREATE TABLE folded (
        id TEXT PRIMARY KEY,
        time REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX folded_time ON folded(time);
    """,
]


# MATERIALIZED: SQLite 3.40 renders json_each's `value` again for each column that reads it, and
# that cost more than the row and its four index entries together; rendered once into a transient
# table, the nine extractions hit SQLite's parse cache. One statement (its own transaction) per
# batch: the store thread takes the GIL once per batch, so it never queues behind the event loop.
# ON CONFLICT (id), not INSERT OR IGNORE: only a stored id is skipped; OR IGNORE would also drop,
# silently and acknowledged, a row that breaks NOT NULL, which must go to the dead-letter table.
# (`WHERE true` lets SQLite's parser tell the upsert clause from a join condition.)
_INSERT_BATCH = """
WITH batch AS MATERIALIZED (SELECT value FROM json_each(?))
INSERT INTO events(id, time, host, type, severity, source, fingerprint, count, last_seen, body)
SELECT value->>'id', value->>'time', value->>'host', value->>'type', value->>'severity',
       value->>'source', value->>'fingerprint', value->>'count', value->>'last_seen', value
FROM batch WHERE true
ON CONFLICT (id) DO NOTHING
"""

# A fold as one statement, like the insert: one payload for the batch, one trip to the store thread
# instead of three (BEGIN, the updates, COMMIT). Only what changed crosses over: an object of
# id -> [count, last_seen] (serialising whole events was most of a fold's cost on the event loop),
# and SQLite patches the stored body. json_set renders the parsed body back as the text it was
# given (orjson's compact form: no whitespace, strings and numbers verbatim), and `->` hands it
# count and last_seen as the text orjson wrote for them, so the body is the same bytes as orjson
# serialising the folded event (a test compares). The body is CAST to TEXT, as SQLite 3.45 reads a
# BLOB as its binary JSON, and kept as a BLOB. The columns are read through `->>` as before.
# A body that is not JSON (only a damaged file holds one) keeps its bytes and its row gets the
# columns: json_set would fail the whole statement, batch after batch, as if the store were down.
# The rest of the body stays as written: a whole event written again also wrote what level 2 had
# noted on it meanwhile (a late root marking it a symptom), but only when a repeat came.
_FOLD_BATCH = """
WITH batch AS MATERIALIZED (SELECT key, value FROM json_each(?))
UPDATE events SET count = batch.value->>0, last_seen = batch.value->>1,
                  body = CASE WHEN json_valid(CAST(body AS TEXT))
                              THEN CAST(json_set(CAST(body AS TEXT), '$.count', batch.value->0,
                                                 '$.last_seen', batch.value->1) AS BLOB)
                              ELSE body END
FROM batch
WHERE events.id = batch.key AND events.count < batch.value->>0
"""


# The repeats folded away: one statement for the batch, like the fold, in its transaction.
_INSERT_FOLDED = """
INSERT INTO folded(id, time) SELECT key, value FROM json_each(?) WHERE true
ON CONFLICT (id) DO NOTHING
"""


def _fold_payload(events: list[Event]) -> bytes | None:
    """The fold's payload: id -> [count, last_seen], the last of each id (the same kept event may
    be folded into many times in one batch); None when there is nothing to fold."""
    if not events:
        return None
    return orjson.dumps({e.id: (e.count, e.last_seen) for e in events})


def _folded_payload(folded: Sequence[Event]) -> bytes | None:
    """The folded repeats' payload: id -> time; None when there are none."""
    if not folded:
        return None
    return orjson.dumps({e.id: e.time for e in folded})


def _write_and_fold(
    conn: sqlite3.Connection, payload: bytes | None, folds: bytes | None, folded: bytes | None
) -> tuple[int, int]:
    """On the store thread: the insert, the fold and the folded repeats' ids in one transaction;
    how many events were new, and how many stored ones the fold changed."""
    conn.execute("BEGIN")
    try:
        before = conn.total_changes
        if payload is not None:
            conn.execute(_INSERT_BATCH, (payload,))
        new = conn.total_changes - before
        if folds is not None:
            conn.execute(_FOLD_BATCH, (folds,))
        changed = conn.total_changes - before - new
        if folded is not None:
            conn.execute(_INSERT_FOLDED, (folded,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (disk full) have rolled it back already
            conn.execute("ROLLBACK")
        raise
    return new, changed


class SqliteFile:
    """One WAL-mode SQLite file with its migrations applied, through aiosqlite: what each SQLite
    store holds (the PostgreSQL stores hold a PgPool)."""

    def __init__(self, path: Path, migrations: list[str], pragmas: tuple[str, ...], what: str) -> None:
        self.path = path
        self._migrations = migrations
        self._pragmas = pragmas
        self._what = what  # named when used before open
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"{self._what} is not open")
        return self._db

    async def open(self) -> None:
        self._db = await open_sqlite(self.path, self._migrations, self._pragmas)

    async def autocheckpoint(self, nbytes: int) -> None:
        """SQLite's own checkpoint in the writer's commits, every `nbytes` of WAL: what a
        checkpointer beside the writer falls back to when it cannot read the WAL's index."""
        rows = list(await self.db.execute_fetchall("PRAGMA page_size"))
        await self.db.execute(f"PRAGMA wal_autocheckpoint = {max(1, nbytes // int(rows[0][0]))}")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


class SqliteEventStore(SqliteFile):
    def __init__(
        self, path: Path, checkpoint_bytes: int = 16 << 20, hard_bytes: int = 64 << 20, fsync: bool = True
    ) -> None:
        # synchronous=FULL with `storage.fsync`: once a batch is stored the journal forgets it (the
        # ack deletes its rows with an fsync), so from then on the store's WAL is the only copy and
        # must be on disk too; one fsync per batch of up to thousands of events, on the store's
        # thread. NORMAL otherwise: a crash of the daemon loses nothing, a power loss may lose the
        # last batches, as the journal's own setting says. Index pages stay cached across batches
        # (64 MiB instead of 2). 16 KiB pages (a new file's; an existing
        # one keeps its own): a batch of hashed ids writes into index pages all over the file, and
        # the WAL's cost goes by pages more than by bytes. WAL checkpoints run beside the writer
        # (correlator/store/checkpoint.py): on its thread each one stalled the batch that crossed
        # the interval. journal_size_limit gives back the disk of a WAL that a reader made grow.
        pragmas = (
            "page_size=16384",
            f"synchronous={'FULL' if fsync else 'NORMAL'}",
            "cache_size=-65536",
            "wal_autocheckpoint=0",
            f"journal_size_limit={hard_bytes}",
        )
        super().__init__(path, MIGRATIONS, pragmas, "event store")
        self.checkpoints = WalCheckpointer(path, checkpoint_bytes, hard_bytes, "events", self.autocheckpoint)
        # Dead letters being retried. One process owns the SQLite file (correlator/datalock.py), so
        # a set in that process is a claim every retry sees.
        self._claimed: dict[int, str] = {}  # id -> key
        # Keys set aside again while their letter was claimed (the retried event was refused again
        # before the retry deleted its letter): that retry's delete leaves the letter.
        self._again: set[str] = set()

    async def open(self) -> None:
        await super().open()
        self.checkpoints.open()

    async def close(self) -> None:
        # The checkpointer first: the writer's connection, closed last, checkpoints what is left.
        await self.checkpoints.close()
        await super().close()

    async def write(self, events: list[Event]) -> int:
        if not events:
            return 0
        db = self.db
        # SQLite unpacks the JSON itself: the event loop only serialises the batch. Through
        # `dumps_events` (the wire form's dicts): the same bytes as orjson serialising the events
        # themselves, at a third of the cost (measured).
        payload = dumps_events(events)
        t0 = time.perf_counter()
        before = db.total_changes
        await db.execute(_INSERT_BATCH, (payload,))
        metrics.STORE_WRITE_SECONDS.observe(time.perf_counter() - t0)
        new = db.total_changes - before
        await self.checkpoints.wrote()
        metrics.EVENTS_STORED.inc(new)
        return new

    async def fold(self, events: list[Event], folded: Sequence[Event] = ()) -> int:
        """Rewrite stored events whose repeat count grew (de-duplication folded later duplicates in),
        and keep the ids of the repeats `folded` into them, in one transaction.

        Only a larger count replaces the stored one, so applying the same fold twice (a batch
        delivered again after a crash) changes nothing. Returns how many stored events changed.
        """
        folds, repeats = _fold_payload(events), _folded_payload(folded)
        if folds is None and repeats is None:
            return 0
        db = self.db
        changed: int
        _, changed = await db._execute(_write_and_fold, db._conn, None, folds, repeats)  # type: ignore[no-untyped-call]
        await self.checkpoints.wrote()
        return changed

    async def write_and_fold(
        self, events: list[Event], updates: list[Event], folded: Sequence[Event] = ()
    ) -> int:
        """`write` and then `fold`, in one transaction and one trip to the store thread: each trip
        waits for the event loop to take the result, which under load is after the pipeline's
        current batch. All or nothing, so a caller may fall back to the two calls on an error."""
        folds, repeats = _fold_payload(updates), _folded_payload(folded)
        if folds is None and repeats is None:
            return await self.write(events)
        db = self.db
        payload = dumps_events(events) if events else None
        t0 = time.perf_counter()
        new: int
        # aiosqlite runs a callable on its thread only through this method: it has no public one.
        new, _ = await db._execute(_write_and_fold, db._conn, payload, folds, repeats)  # type: ignore[no-untyped-call]
        metrics.STORE_WRITE_SECONDS.observe(time.perf_counter() - t0)
        await self.checkpoints.wrote()
        metrics.EVENTS_STORED.inc(new)
        return new

    async def query(self, q: EventQuery) -> EventPage:
        w = Where(postgres=False)
        for column, value in (
            ("host", q.host),
            ("type", q.type),
            ("source", q.source),
            ("fingerprint", q.fingerprint),
        ):
            w.eq(column, value)
        w.among("severity", q.severities).cmp("time", ">=", q.since).cmp("time", "<", q.until)
        sql, args = w.page("SELECT pos, body FROM events", "pos", q.cursor, q.limit)
        rows, more = split_page(list(await self.db.execute_fetchall(sql, args)), q.limit)
        events = [Event.from_wire(orjson.loads(body)) for _, body in rows]
        return EventPage(events, rows[-1][0] if more else None)

    async def known(self, ids: list[str]) -> set[str]:
        sql = (
            "WITH asked AS MATERIALIZED (SELECT value FROM json_each(?))"
            " SELECT id FROM events WHERE id IN asked UNION ALL SELECT id FROM folded WHERE id IN asked"
        )
        return {row[0] for row in await self.db.execute_fetchall(sql, (orjson.dumps(ids),))}

    async def position(self) -> int:
        rows = list(await self.db.execute_fetchall("SELECT COALESCE(MAX(pos), 0) FROM events"))
        return int(rows[0][0])

    async def after(self, pos: int, limit: int, hosts: list[str] | None = None) -> list[tuple[int, Event]]:
        if hosts is None:
            sql = "SELECT pos, body FROM events WHERE pos > ? ORDER BY pos LIMIT ?"
            rows = await self.db.execute_fetchall(sql, (pos, limit))
        else:
            sql = (
                "SELECT pos, body FROM events WHERE pos > ? AND host IN (SELECT value FROM json_each(?))"
                " ORDER BY pos LIMIT ?"
            )
            rows = await self.db.execute_fetchall(sql, (pos, orjson.dumps(hosts), limit))
        return [(p, Event.from_wire(orjson.loads(body))) for p, body in rows]

    async def hosts_after(self, pos: int) -> list[str]:
        sql = "SELECT DISTINCT host FROM events WHERE pos > ?"
        return [row[0] for row in await self.db.execute_fetchall(sql, (pos,))]

    async def count(self) -> int:
        rows = list(await self.db.execute_fetchall("SELECT COUNT(*) FROM events"))
        return int(rows[0][0])

    async def busiest_hosts(self, since: float, until: float, limit: int) -> list[tuple[str, int]]:
        sql = (
            "SELECT host, SUM(count) AS n FROM events WHERE time >= ? AND time < ?"
            " GROUP BY host ORDER BY n DESC, host LIMIT ?"
        )
        return [(r[0], int(r[1])) for r in await self.db.execute_fetchall(sql, (since, until, limit))]

    async def delete_older_than(self, t: float) -> int:
        cur = await self.db.execute("DELETE FROM events WHERE time < ?", (t,))
        n = cur.rowcount
        await self.db.execute("DELETE FROM folded WHERE time < ?", (t,))
        metrics.RETENTION_DELETED.inc(max(n, 0))
        await self.checkpoints.wrote()  # a large delete's pages are WAL frames too
        return n

    async def add_dead_letters(self, items: list[DeadLetter]) -> int:
        if self._claimed:
            claimed = set(self._claimed.values())
            self._again.update(d.key for d in items if d.key in claimed)
        db = self.db
        before = db.total_changes
        async with transaction(db):
            await db.executemany(
                "INSERT INTO dead_letters(key, at, reason, source, event_id, error, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                [(d.key, d.at, d.reason, d.source, d.event_id, d.error, d.raw) for d in items],
            )
        await self.checkpoints.wrote()
        return db.total_changes - before

    async def dead_letters(self, limit: int, cursor: int | None, reason: str | None) -> DeadLetterPage:
        w = Where(postgres=False)
        w.eq("reason", reason)
        sql, args = w.page(_DL_SELECT, "id", cursor, limit)
        rows, more = split_page(list(await self.db.execute_fetchall(sql, args)), limit)
        items = [_dead_letter(r) for r in rows]
        return DeadLetterPage(items, items[-1].id if more else None)

    async def get_dead_letter(self, id_: int) -> DeadLetter | None:
        sql = "SELECT id, at, reason, source, event_id, error, raw FROM dead_letters WHERE id = ?"
        rows = list(await self.db.execute_fetchall(sql, (id_,)))
        return _dead_letter(rows[0]) if rows else None

    async def delete_dead_letter(self, id_: int) -> bool:
        if id_ in self._claimed:
            raise DeadLetterBusy(id_)  # a retry holds it: deleting it would race the retry's delete
        return await self._delete_dead_letter(id_)

    async def _delete_dead_letter(self, id_: int) -> bool:
        cur = await self.db.execute("DELETE FROM dead_letters WHERE id = ?", (id_,))
        return cur.rowcount > 0

    @contextlib.asynccontextmanager
    async def claim_dead_letter(self, id_: int) -> AsyncIterator[Claim]:
        if id_ in self._claimed:
            raise DeadLetterBusy(id_)
        self._claimed[id_] = ""
        try:
            letter = await self.get_dead_letter(id_)
            key = self._claimed[id_] = letter.key if letter is not None else ""

            async def delete(i: int) -> bool:
                if key in self._again:  # set aside again meanwhile: it stays
                    return False
                return await self._delete_dead_letter(i)

            yield Claim(letter, delete)
        finally:
            key = self._claimed.pop(id_, "")
            self._again.discard(key)

    async def ping(self) -> bool:
        try:
            await self.db.execute_fetchall("SELECT 1")
            return True
        except Exception:
            return False


_DL_SELECT = "SELECT id, at, reason, source, event_id, error, raw FROM dead_letters"


def _dead_letter(r: Any) -> DeadLetter:
    return DeadLetter(r[2], r[3], r[4], r[5], r[6], r[1], r[0])


async def open_sqlite(
    path: Path, migrations: list[str], pragmas: tuple[str, ...] = ()
) -> aiosqlite.Connection:
    """Open (creating its directory) a WAL-mode SQLite file in autocommit, set `pragmas`, migrate it.
    The pragmas come before WAL mode, which fixes a new file's page size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in pragmas:
            await db.execute(f"PRAGMA {pragma}")
        await db.execute("PRAGMA journal_mode=WAL")
        await migrate(db, migrations)
    except BaseException as e:
        await db.close()
        e.add_note(f"while opening {path}")
        raise
    return db


@contextlib.asynccontextmanager
async def transaction(db: aiosqlite.Connection, begin: str = "BEGIN") -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN ... COMMIT on an autocommit connection (open_sqlite's); ROLLBACK if the block raises.
    `begin="BEGIN IMMEDIATE"` takes the write lock at once (read-then-write blocks)."""
    await db.execute(begin)
    try:
        yield db
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise


async def migrate(db: aiosqlite.Connection, migrations: list[str]) -> int:
    """Apply the migrations newer than the database's user_version, each in its own transaction."""
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    version = int(rows[0][0])
    if version > len(migrations):
        raise RuntimeError(
            f"database schema version {version} is newer than this correlator knows ({len(migrations)});"
            " upgrade the correlator or restore a matching backup"
        )
    for n, script in enumerate(migrations[version:], start=version + 1):
        await db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {n};\nCOMMIT;")
    return len(migrations) - version
