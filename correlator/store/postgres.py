"""PostgreSQL event store (asyncpg), selected by `storage.dsn`; same contract as the SQLite store.

One binary COPY per pipeline batch (in one transaction with the batch's fold, when it has one); a
batch holding an id the store has (delivered again) falls back to one multi-row INSERT ... ON
CONFLICT DO NOTHING (arrays through unnest), which ignores it.
COPY costs the server and the client less than the INSERT (no arrays to build and unpack, no
conflict check per row), and the unique index on `id` still refuses a second copy of an event.
Schema versions are kept per component in `correlator_schema` and applied on open under an
advisory lock, so two daemons starting together against one database do not race.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson

from correlator import metrics
from correlator.deadletter import CLAIM_SECONDS, Claim, DeadLetter, DeadLetterBusy, DeadLetterPage
from correlator.errors import ConfigError
from correlator.event import Event
from correlator.store import EventPage, EventQuery
from correlator.store.query import Where, split_page

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 1: events
    """
    CREATE TABLE events (
        pos BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time DOUBLE PRECISION NOT NULL,
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        source TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX events_host ON events(host, pos);
    CREATE INDEX events_type ON events(type, pos);
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_fingerprint ON events(fingerprint, pos);
    """,
    # 2: de-duplication counters, so fold() can grow a stored event's repeat count idempotently
    """
    ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE events ADD COLUMN last_seen DOUBLE PRECISION;
    UPDATE events SET last_seen = time;
    """,
    # 3: the dead-letter path (correlator/deadletter.py): what the store or the journal could not take
    """
    CREATE TABLE dead_letters (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        error TEXT NOT NULL,
        raw TEXT NOT NULL
    );
    """,
    # 4: reporting views (docs/incidents.md "Reporting with SQL"): the columns as timestamptz and
    # jsonb for Grafana and plain SQL. Views, not generated columns, so the hot insert path keeps
    # its cost; `epoch` stays for range filters that must use the events_time index.
    """
    CREATE VIEW events_v AS
    SELECT pos, id, to_timestamp(time) AS time, host, type, severity, source, fingerprint, count,
           to_timestamp(COALESCE(last_seen, time)) AS last_seen, body::jsonb AS body, time AS epoch
    FROM events;
    CREATE VIEW dead_letters_v AS
    SELECT id, key, to_timestamp(at) AS at, reason, source, event_id, error, raw
    FROM dead_letters;
    """,
    # 5: cheaper indexes on the hot insert path. No query of the correlator looks events up by
    # fingerprint but the API's filter, which scans by position as the SQLite store does (it never
    # had that index); event time grows with the table, so a BRIN index (a few bytes per 128 pages,
    # next to nothing per insert) serves time ranges (retention, reports) where a B-tree grew by
    # one entry per event.
    """
    DROP INDEX events_fingerprint;
    DROP INDEX events_time;
    CREATE INDEX events_time ON events USING brin(time) WITH (autosummarize = on);
    """,
    # 6: a dead letter's retry claim (correlator/deadletter.py): a token and when it was taken (the
    # database's clock, one for every daemon sharing it), so the claim holds no lock or connection
    # while the event is emitted, and a claim whose daemon died lapses.
    """
    ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS claim TEXT;
    ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMPTZ;
    """,
    # 7: the ids of repeats de-duplication folded into a stored event, written by the fold's own
    # statement, so that `known` names them as it names stored ids: a batch delivered again after a
    # crash would otherwise store them anew, the fold already counted. `time` (the repeat's) for
    # retention, under a BRIN index as the events' own.
    """
    CREATE TABLE folded (
        id TEXT PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX folded_time ON folded USING brin(time) WITH (autosummarize = on);
    """,
]

_LOCK_ID = 0x636F7272  # advisory lock serialising migrations ('corr')
# A process stopped inside its migrations (SIGSTOP, a paused virtual machine) holds the lock for as
# long as its transaction stays open: the server ends its session once it sat idle that long in it,
# and another process waits for the lock that long at a time, logged.
MIGRATION_IDLE_TIMEOUT = "30s"
MIGRATION_LOCK_TIMEOUT = "5s"


async def migrate_pg(conn: Any, component: str, migrations: list[str]) -> int:
    """Apply `migrations` newer than the recorded version of `component`; returns how many ran.
    Raises asyncpg.LockNotAvailableError after waiting MIGRATION_LOCK_TIMEOUT for a lock."""
    # Most starts find the schema current: read so without the lock, which another process's long
    # migration (of another component) may hold for minutes.
    if await conn.fetchval("SELECT to_regclass('correlator_schema') IS NOT NULL"):
        current = await conn.fetchval("SELECT version FROM correlator_schema WHERE component = $1", component)
        if current is not None and int(current) == len(migrations):
            return 0
    async with conn.transaction():
        await conn.execute(
            f"SET LOCAL idle_in_transaction_session_timeout = '{MIGRATION_IDLE_TIMEOUT}';"
            f" SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"
        )
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        # The limit is for the lock alone: a migration's own statements (an index build, a DROP
        # waiting for a long report to finish) take the time they need.
        await conn.execute("SET LOCAL lock_timeout = 0")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS correlator_schema"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        version = await conn.fetchval("SELECT version FROM correlator_schema WHERE component = $1", component)
        version = int(version or 0)
        if version > len(migrations):
            raise RuntimeError(
                f"{component} schema version {version} is newer than this correlator knows"
                f" ({len(migrations)}); upgrade the correlator or restore a matching backup"
            )
        for script in migrations[version:]:
            await conn.execute(script)
        await conn.execute(
            "INSERT INTO correlator_schema(component, version) VALUES ($1, $2)"
            " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            component,
            len(migrations),
        )
    return len(migrations) - version


async def migrate_waiting(conn: Any, component: str, migrations: list[str]) -> int:
    """migrate_pg, tried again while another process holds a lock it needs (its own migrations
    under way, or a process paused inside them until the server ends its session): start-up
    waits, saying so in the log and in `correlator_pg_migration_lock_waits_total`."""
    while True:
        try:
            return await migrate_pg(conn, component, migrations)
        except asyncpg.LockNotAvailableError as e:
            metrics.PG_MIGRATION_LOCK_WAITS.inc()
            log.warning(
                "%s schema: another process holds the migration lock (%s); trying again", component, e
            )


_COLUMNS = ("id", "time", "host", "type", "severity", "source", "fingerprint", "body", "count", "last_seen")
_INSERT = """
INSERT INTO events(id, time, host, type, severity, source, fingerprint, body, count, last_seen)
SELECT * FROM unnest(
    $1::text[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::int[], $10::float8[]
)
ON CONFLICT (id) DO NOTHING
"""

# Only what changed is sent (serialising whole events was most of a fold's cost on the event loop)
# and the stored text is patched: `count` and `last_seen` are the last keys of the wire form
# (Event.to_dict), so the body's last `,"count":` is its own and what follows it is replaced by the
# new values as orjson writes them ($4: last_seen's text). The result is the same text as orjson
# serialising the folded event. Not jsonb_set: the body is TEXT in orjson's form, which jsonb would
# rewrite whole (keys reordered, spaces, a float such as 1e+16 written back as an integer).
# The ids of the repeats folded away ($5, with their times $6) are kept by the same statement, so
# they are known exactly when the fold is stored; a fenced worker's fold (the trigger on `events`)
# keeps none either.
_FOLD = """
WITH repeats AS (
    INSERT INTO folded(id, time) SELECT * FROM unnest($5::text[], $6::float8[])
    ON CONFLICT (id) DO NOTHING
)
UPDATE events AS e SET count = u.count, last_seen = u.last_seen,
    body = left(e.body, length(e.body) - strpos(reverse(e.body), ':"tnuoc",') - 8)
           || ',"count":' || u.count || ',"last_seen":' || u.seen || '}'
FROM unnest($1::text[], $2::int[], $3::float8[], $4::text[]) AS u(id, count, last_seen, seen)
WHERE e.id = u.id AND e.count < u.count
"""


def _fold_args(events: list[Event], folded: Sequence[Event]) -> list[list[Any]] | None:
    """_FOLD's arguments: the last state of each kept event, and the repeats' ids and times; None
    when there is nothing to fold."""
    latest = {e.id: e for e in events}
    repeats = {e.id: e.time for e in folded}
    if not latest and not repeats:
        return None
    rows = list(latest.values())
    return [
        [e.id for e in rows],
        [e.count for e in rows],
        [e.last_seen for e in rows],
        [orjson.dumps(e.last_seen).decode() for e in rows],
        list(repeats),
        list(repeats.values()),
    ]


def _transaction_if(conn: Any, wanted: bool) -> contextlib.AbstractAsyncContextManager[Any]:
    """A transaction on `conn` when `wanted`; else nothing (each statement its own)."""
    return conn.transaction() if wanted else contextlib.nullcontext()


def safe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# A process stopped inside a transaction (SIGSTOP, a paused virtual machine, a debugger) keeps its
# row locks for as long as the transaction stays open, and in a cluster other workers queue behind
# them (an incident commit updates one shared row). The server ends such a session once it sat that
# long idle inside a transaction; the process finds its connection gone at its next statement, a
# transient error it retries on a new one. No transaction here waits on anything but its own
# statements, so 30 s idle means the process is not running. A DSN that sets the parameter itself
# keeps its own value.
SESSION_IDLE_TIMEOUT = "30s"


async def connect_pool(dsn: str, setting: str) -> Any:
    """An asyncpg pool, or a ConfigError naming the setting when the server cannot be used."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=4,
            timeout=10,
            reset=_keep_session,
            server_settings=_session_settings(dsn),
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise ConfigError(f"'{setting}': cannot use PostgreSQL at {safe_dsn(dsn)}: {e}") from None


def _session_settings(dsn: str) -> dict[str, str] | None:
    if "idle_in_transaction_session_timeout" in urllib.parse.urlsplit(dsn).query:
        return None
    return {"idle_in_transaction_session_timeout": SESSION_IDLE_TIMEOUT}


async def _keep_session(conn: Any) -> None:
    """What the pool runs when a connection comes back (asyncpg has already rolled back an open
    transaction by then): nothing more. asyncpg's default sends a reset query (RESET ALL, UNLISTEN *,
    CLOSE ALL, pg_advisory_unlock_all()), one more round trip after every statement through the
    pool; no store here leaves session state behind (no SET, LISTEN, cursor or session lock:
    migrations take a transaction-scoped lock)."""


class PgPool:
    """An asyncpg pool on a DSN with one component's migrations applied: what each PostgreSQL store holds."""

    def __init__(self, dsn: str, setting: str, component: str, migrations: list[str], what: str) -> None:
        self._dsn = dsn
        self._setting = setting  # named in connection errors
        self._component = component  # its own schema version row
        self._migrations = migrations
        self._what = what
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError(f"{self._what} is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await connect_pool(self._dsn, self._setting)
        try:
            async with self._pool.acquire() as conn:
                await migrate_waiting(conn, self._component, self._migrations)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class PgEventStore:
    def __init__(self, dsn: str) -> None:
        self._pg = PgPool(dsn, "storage.dsn", "events", MIGRATIONS, "event store")
        self.claim_seconds = CLAIM_SECONDS  # a dead letter's retry claim lapses after it

    @property
    def pool(self) -> Any:
        return self._pg.pool

    async def open(self) -> None:
        await self._pg.open()

    async def write(self, events: list[Event]) -> int:
        """Binary COPY of the batch; when an id is already stored (a batch delivered again) or
        twice in the batch, the COPY stores nothing and the INSERT that skips those ids runs."""
        return await self._write(events, None)

    async def _write(self, events: list[Event], fold: list[list[Any]] | None) -> int:
        """`write`, and with `fold` (_fold_args) the fold in the same transaction."""
        if not events:
            return 0
        rows = [
            (e.id, e.time, e.host, e.type, e.severity.value, e.source, e.fingerprint,
             orjson.dumps(e.to_dict()).decode(), e.count, e.last_seen)
            for e in events
        ]  # fmt: skip
        t0 = time.perf_counter()
        async with self.pool.acquire() as conn:
            try:
                async with _transaction_if(conn, fold is not None):
                    status = await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
                    if fold is not None:
                        await conn.execute(_FOLD, *fold)
            except asyncpg.UniqueViolationError:
                # The COPY's failure ended the transaction: all of it again, with the INSERT.
                async with _transaction_if(conn, fold is not None):
                    status = await conn.execute(
                        _INSERT, *(list(column) for column in zip(*rows, strict=True))
                    )
                    if fold is not None:
                        await conn.execute(_FOLD, *fold)
            except (asyncpg.InternalClientError, asyncpg.InterfaceError):
                # A session the server ended during a COPY (a fence, a restart) can leave asyncpg's
                # connection mid-protocol, refusing every later call: drop it so the pool opens a
                # new one instead of handing the broken one out again.
                conn.terminate()
                raise
        metrics.STORE_WRITE_SECONDS.observe(time.perf_counter() - t0)
        new = int(status.rsplit(" ", 1)[-1])  # 'COPY <rows>' or 'INSERT 0 <rows>'
        metrics.EVENTS_STORED.inc(new)
        return new

    async def fold(self, events: list[Event], folded: Sequence[Event] = ()) -> int:
        """Rewrite stored events whose repeat count grew (de-duplication) and keep the ids of the
        repeats `folded` into them; a smaller count changes nothing, so a fold delivered twice is
        harmless. One statement for the whole batch."""
        fold = _fold_args(events, folded)
        if fold is None:
            return 0
        status = await self.pool.execute(_FOLD, *fold)
        return int(status.rsplit(" ", 1)[-1])  # 'UPDATE <rows>'

    async def write_and_fold(
        self, events: list[Event], updates: list[Event], folded: Sequence[Event] = ()
    ) -> int:
        """The write and the fold in one transaction: an event written may carry a count that
        repeats folded away in the same batch grew, and their ids are kept by the fold, so one
        without the other would count them again when the batch is delivered again after a crash.
        BEGIN and COMMIT cost a round trip each; the two statements apart cost a commit each."""
        fold = _fold_args(updates, folded)
        if fold is None:
            return await self.write(events)
        if not events:
            await self.pool.execute(_FOLD, *fold)
            return 0
        return await self._write(events, fold)

    async def query(self, q: EventQuery) -> EventPage:
        w = Where(postgres=True)
        for column, value in (
            ("host", q.host),
            ("type", q.type),
            ("source", q.source),
            ("fingerprint", q.fingerprint),
        ):
            w.eq(column, value)
        w.among("severity", q.severities).cmp("time", ">=", q.since).cmp("time", "<", q.until)
        sql, args = w.page("SELECT pos, body FROM events", "pos", q.cursor, q.limit)
        rows, more = split_page(list(await self.pool.fetch(sql, *args)), q.limit)
        events = [Event.from_wire(orjson.loads(r["body"])) for r in rows]
        return EventPage(events, rows[-1]["pos"] if more else None)

    async def known(self, ids: list[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM events WHERE id = ANY($1::text[])"
            " UNION ALL SELECT id FROM folded WHERE id = ANY($1::text[])",
            ids,
        )
        return {r["id"] for r in rows}

    async def position(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(pos), 0) FROM events"))

    async def after(self, pos: int, limit: int, hosts: list[str] | None = None) -> list[tuple[int, Event]]:
        if hosts is None:
            sql = "SELECT pos, body FROM events WHERE pos > $1 ORDER BY pos LIMIT $2"
            rows = await self.pool.fetch(sql, pos, limit)
        else:
            sql = "SELECT pos, body FROM events WHERE pos > $1 AND host = ANY($3) ORDER BY pos LIMIT $2"
            rows = await self.pool.fetch(sql, pos, limit, hosts)
        return [(r["pos"], Event.from_wire(orjson.loads(r["body"]))) for r in rows]

    async def hosts_after(self, pos: int) -> list[str]:
        rows = await self.pool.fetch("SELECT DISTINCT host FROM events WHERE pos > $1", pos)
        return [r["host"] for r in rows]

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT COUNT(*) FROM events"))

    async def busiest_hosts(self, since: float, until: float, limit: int) -> list[tuple[str, int]]:
        sql = (
            "SELECT host, SUM(count) AS n FROM events WHERE time >= $1 AND time < $2"
            " GROUP BY host ORDER BY n DESC, host LIMIT $3"
        )
        return [(r["host"], int(r["n"])) for r in await self.pool.fetch(sql, since, until, limit)]

    async def delete_older_than(self, t: float) -> int:
        status = await self.pool.execute(
            "WITH repeats AS (DELETE FROM folded WHERE time < $1) DELETE FROM events WHERE time < $1", t
        )
        n = int(status.rsplit(" ", 1)[-1])
        metrics.RETENTION_DELETED.inc(n)
        return n

    async def add_dead_letters(self, items: list[DeadLetter]) -> int:
        # One row per key: ON CONFLICT DO UPDATE refuses a statement that would touch a row twice
        # (two undecodable copies of one event in a journal item share their key).
        items = list({d.key: d for d in items}.values())
        status = await self.pool.execute(
            "INSERT INTO dead_letters(key, at, reason, source, event_id, error, raw)"
            " SELECT * FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::text[]) ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at, error = EXCLUDED.error,"
            # Set aside again while a retry holds it (the retried event was refused again before
            # the retry deleted it): the claim goes, so the retry's delete, which names its claim,
            # leaves the letter. Unclaimed, a batch delivered again is kept once, as it was.
            " claim = NULL, claimed_at = NULL WHERE dead_letters.claim IS NOT NULL",
            [d.key for d in items],
            [d.at for d in items],
            [d.reason for d in items],
            [d.source for d in items],
            [d.event_id for d in items],
            [d.error for d in items],
            [d.raw for d in items],
        )
        return int(status.rsplit(" ", 1)[-1])

    async def dead_letters(self, limit: int, cursor: int | None, reason: str | None) -> DeadLetterPage:
        w = Where(postgres=True)
        w.eq("reason", reason)
        sql, args = w.page(_DL_SELECT, "id", cursor, limit)
        rows, more = split_page(list(await self.pool.fetch(sql, *args)), limit)
        items = [_dead_letter(r) for r in rows]
        return DeadLetterPage(items, items[-1].id if more else None)

    async def get_dead_letter(self, id_: int) -> DeadLetter | None:
        row = await self.pool.fetchrow(
            "SELECT id, at, reason, source, event_id, error, raw FROM dead_letters WHERE id = $1", id_
        )
        return _dead_letter(row) if row is not None else None

    async def delete_dead_letter(self, id_: int) -> bool:
        status = await self.pool.execute(_DL_DELETE_FREE, id_, self.claim_seconds)
        if status != "DELETE 0":
            return True
        if await self.pool.fetchval("SELECT 1 FROM dead_letters WHERE id = $1", id_) is not None:
            raise DeadLetterBusy(id_)  # a retry holds it: deleting it would race the retry's delete
        return False

    @contextlib.asynccontextmanager
    async def claim_dead_letter(self, id_: int) -> AsyncIterator[Claim]:
        """A claim token written in a transaction of its own (the row lock lasts two statements),
        so no connection or lock is held while the retry emits; the retry's delete and the release
        name the token, and do nothing once a lapsed claim was taken over."""
        token = secrets.token_hex(8)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_DL_CLAIM, id_, self.claim_seconds)
            if row is not None and not row["free"]:
                raise DeadLetterBusy(id_)
            if row is not None:
                await conn.execute(
                    "UPDATE dead_letters SET claim = $2, claimed_at = clock_timestamp() WHERE id = $1",
                    id_,
                    token,
                )
        claim = Claim(
            _dead_letter(row) if row is not None else None,
            lambda i: self.pool.execute("DELETE FROM dead_letters WHERE id = $1 AND claim = $2", i, token),
        )
        try:
            yield claim
        finally:
            if row is not None and not claim.deleted:
                await self._release(id_, token)

    async def _release(self, id_: int, token: str) -> None:
        try:
            await self.pool.execute(
                "UPDATE dead_letters SET claim = NULL, claimed_at = NULL WHERE id = $1 AND claim = $2",
                id_,
                token,
            )
        except Exception as e:  # the database is unreachable: the claim lapses by itself
            log.warning(
                "dead letter %d: retry claim not released (it lapses): %s: %s", id_, type(e).__name__, e
            )

    async def ping(self) -> bool:
        try:
            await self.pool.fetchval("SELECT 1")
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self._pg.close()


_DL_COLUMNS = "id, at, reason, source, event_id, error, raw"
_DL_SELECT = f"SELECT {_DL_COLUMNS} FROM dead_letters"  # noqa: S608 (constant)
# No claim holds the row, or its claim lapsed ($2: the claim's lifetime in seconds).
_FREE = "(claim IS NULL OR claimed_at < clock_timestamp() - make_interval(secs => $2))"
_DL_DELETE_FREE = f"DELETE FROM dead_letters WHERE id = $1 AND {_FREE}"  # noqa: S608 (constant)
_DL_CLAIM = f"SELECT {_DL_COLUMNS}, {_FREE} AS free FROM dead_letters WHERE id = $1 FOR UPDATE"  # noqa: S608 (constant)


def _dead_letter(r: Any) -> DeadLetter:
    return DeadLetter(r["reason"], r["source"], r["event_id"], r["error"], r["raw"], r["at"], r["id"])
