"""PostgreSQL incident store (asyncpg pool), selected by `incidents.dsn`; same contract as SQLite.

Migrations are versioned per component (store/postgres.py `migrate_pg`) and applied on open.
"""

from __future__ import annotations

from typing import Any

import orjson

from correlator.incidents.lifecycle import Changes
from correlator.incidents.model import Incident, LogEntry
from correlator.incidents.store import COMMIT_SET, WRITES, IncidentPage, IncidentQuery, Rows, put, rows
from correlator.store.postgres import PgPool
from correlator.store.query import Where, split_page

MIGRATIONS: list[str] = [
    # 1: incidents and their timeline (events, comments, audited changes)
    """
    CREATE TABLE incidents (
        id BIGSERIAL PRIMARY KEY,
        key TEXT,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        host TEXT NOT NULL,
        service TEXT NOT NULL,
        major BOOLEAN NOT NULL,
        opened_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX incidents_active_key ON incidents(key)
        WHERE status IN ('new', 'acknowledged', 'in_progress', 'on_hold');
    CREATE INDEX incidents_status ON incidents(status, id);
    CREATE INDEX incidents_host ON incidents(host, id);
    CREATE INDEX incidents_opened ON incidents(opened_at);
    CREATE TABLE incident_log (
        seq BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL REFERENCES incidents(id),
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX incident_log_incident ON incident_log(incident_id, seq);
    """,
    # 2: reporting views (docs/incidents.md "Reporting with SQL"): times as timestamptz, the
    # document as jsonb, over the tables the store writes unchanged (no cost on its write path).
    """
    CREATE VIEW incidents_v AS
    SELECT i.id, 'INC-' || lpad(i.id::text, 6, '0') AS number, i.key, i.status, i.priority,
           i.host, i.service, i.major, b ->> 'title' AS title, b ->> 'rule' AS rule,
           b ->> 'severity' AS severity, b ->> 'assignment_group' AS assignment_group,
           (b ->> 'event_count')::bigint AS event_count, (b ->> 'reopen_count')::int AS reopen_count,
           to_timestamp(i.opened_at) AS opened_at,
           to_timestamp((b ->> 'acknowledged_at')::float8) AS acknowledged_at,
           to_timestamp((b ->> 'resolved_at')::float8) AS resolved_at,
           to_timestamp((b ->> 'closed_at')::float8) AS closed_at,
           to_timestamp(i.updated_at) AS updated_at,
           b AS body, i.opened_at AS opened_epoch
    FROM incidents AS i CROSS JOIN LATERAL (SELECT i.body::jsonb AS b) AS doc;
    CREATE VIEW incident_log_v AS
    SELECT seq, incident_id, to_timestamp(at) AS at, actor, action, detail::jsonb AS detail
    FROM incident_log;
    """,
    # 3: the token of the last commit written (IncidentStore.write), where it is not there yet
    """
    CREATE TABLE IF NOT EXISTS incident_commit (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), token BIGINT NOT NULL
    );
    INSERT INTO incident_commit VALUES (TRUE, 0) ON CONFLICT DO NOTHING;
    """,
]


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, ..."""
    parts = sql.split("?")
    return "".join(f"{p}${n}" for n, p in enumerate(parts[:-1], start=1)) + parts[-1]


_WRITES = tuple(_numbered(sql) for sql in WRITES)
_COMMIT_SET = _numbered(COMMIT_SET)


class PgIncidentStore:
    def __init__(self, dsn: str) -> None:
        self._pg = PgPool(dsn, "incidents.dsn or storage.dsn", "incidents", MIGRATIONS, "incident store")

    @property
    def pool(self) -> Any:
        return self._pg.pool

    async def open(self) -> None:
        await self._pg.open()

    async def save(self, changes: Changes) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if changes.new:
                # The ids first, in one round trip, so each body (which holds its id) is written
                # once: an insert and an update per incident were two round trips each, in series,
                # through a storm's thousands of openings. Ids a rolled-back batch took stay unused,
                # as BIGSERIAL's would.
                ids = await conn.fetch(
                    "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)",
                    len(changes.new),
                )
                for inc, new_id in zip(changes.new, sorted(r[0] for r in ids), strict=True):
                    inc.id = new_id
            await put(conn.executemany, rows(changes), _WRITES)

    async def write(self, r: Rows, retry: bool = False) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # FOR UPDATE: a try whose COMMIT is still under way holds the row; its outcome is
            # known once the lock is granted.
            if retry and await conn.fetchval("SELECT token FROM incident_commit FOR UPDATE") == r.token:
                return
            await put(conn.executemany, r, _WRITES)
            await conn.execute(_COMMIT_SET, r.token)

    async def reserve_ids(self, ceiling: int) -> None:
        # setval is not transactional and is logged at once: a crash never takes it back.
        await self.pool.execute(
            "SELECT setval(s, GREATEST($1::bigint, COALESCE((SELECT MAX(id) FROM incidents), 0), 1))"
            " FROM pg_get_serial_sequence('incidents', 'id') AS s",
            ceiling,
        )

    async def last_id(self) -> int:
        last = await self.pool.fetchval(
            "SELECT GREATEST(COALESCE(pg_sequence_last_value(s::regclass), 0),"
            " COALESCE((SELECT MAX(id) FROM incidents), 0)) FROM pg_get_serial_sequence('incidents', 'id') AS s"
        )
        return int(last)

    async def load_unclosed(self) -> list[Incident]:
        rows = await self.pool.fetch("SELECT body FROM incidents WHERE status <> 'closed' ORDER BY id")
        return [Incident.from_doc(orjson.loads(r[0])) for r in rows]

    async def latest_for_keys(self, keys: list[str]) -> list[Incident]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (key) body FROM incidents WHERE key = ANY($1::text[]) ORDER BY key, id DESC",
            keys,
        )
        return [Incident.from_doc(orjson.loads(r[0])) for r in rows]

    async def get(self, incident_id: int) -> Incident | None:
        body = await self.pool.fetchval("SELECT body FROM incidents WHERE id = $1", incident_id)
        return Incident.from_doc(orjson.loads(body)) if body is not None else None

    async def timeline(self, incident_id: int) -> list[LogEntry]:
        rows = await self.pool.fetch(
            "SELECT seq, at, actor, action, detail FROM incident_log WHERE incident_id = $1 ORDER BY seq",
            incident_id,
        )
        return [
            LogEntry(r["at"], r["actor"], r["action"], orjson.loads(r["detail"]), None, incident_id, r["seq"])
            for r in rows
        ]

    async def query(self, q: IncidentQuery) -> IncidentPage:
        w = Where(postgres=True)
        w.among("status", q.statuses).among("priority", q.priorities)
        w.eq("host", q.host).eq("service", q.service).eq("key", q.key)
        w.eq("major", q.major).cmp("opened_at", ">=", q.since)
        w.cmp("opened_at", "<", q.until).eq("body::jsonb ->> 'assignment_group'", q.group)
        sql, args = w.page("SELECT id, body FROM incidents", "id", q.cursor, q.limit)
        rows, more = split_page(list(await self.pool.fetch(sql, *args)), q.limit)
        incidents = [Incident.from_doc(orjson.loads(r["body"])) for r in rows]
        return IncidentPage(incidents, rows[-1]["id"] if more else None)

    async def ping(self) -> bool:
        try:
            await self.pool.fetchval("SELECT 1")
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self._pg.close()
