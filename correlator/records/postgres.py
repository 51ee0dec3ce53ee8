"""PostgreSQL record store (asyncpg pool); same contract and tests as the SQLite one."""

from __future__ import annotations

from typing import Any

import orjson

from correlator.records.store import KINDS, Kind, LogEntry, Occurrence, RecordConflict, Trend
from correlator.store.postgres import PgPool
from correlator.store.query import Where

MIGRATIONS: list[str] = [
    # 1: one table per record kind, a shared audit log, problem-detection occurrences
    "\n".join(
        f"""
        CREATE TABLE {kind} (
            id BIGSERIAL PRIMARY KEY,
            state TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX {kind}_state ON {kind}(state, id);
        """
        for kind in KINDS
    )
    + """
    CREATE TABLE record_log (
        seq BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        record_id BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX record_log_record ON record_log(kind, record_id, seq);
    CREATE TABLE occurrences (
        incident_id BIGINT NOT NULL,
        occurrence INTEGER NOT NULL,
        signature TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (incident_id, occurrence)
    );
    CREATE INDEX occurrences_at ON occurrences(at);
    """,
    # 2: reporting views (docs/incidents.md "Reporting with SQL"): times as timestamptz, the
    # document as jsonb, over the tables the store writes unchanged (no cost on its write path).
    """
    CREATE VIEW changes_v AS
    SELECT c.id, 'CHG-' || lpad(c.id::text, 6, '0') AS number, c.state, b ->> 'title' AS title,
           b ->> 'risk' AS risk, COALESCE((b ->> 'withdrawn')::boolean, false) AS withdrawn,
           to_timestamp((b ->> 'start')::float8) AS planned_start,
           to_timestamp((b ->> 'end')::float8) AS planned_end,
           to_timestamp((b ->> 'started_at')::float8) AS started_at,
           to_timestamp((b ->> 'finished_at')::float8) AS finished_at,
           to_timestamp((b ->> 'created_at')::float8) AS created_at,
           to_timestamp(c.updated_at) AS updated_at, b AS body
    FROM changes AS c CROSS JOIN LATERAL (SELECT c.body::jsonb AS b) AS doc;
    CREATE VIEW problems_v AS
    SELECT p.id, 'PRB-' || lpad(p.id::text, 6, '0') AS number, p.state, b ->> 'title' AS title,
           b ->> 'signature' AS signature, jsonb_array_length(b -> 'incidents') AS incident_count,
           to_timestamp((b ->> 'opened_at')::float8) AS opened_at,
           to_timestamp((b ->> 'resolved_at')::float8) AS resolved_at,
           to_timestamp(p.updated_at) AS updated_at, b AS body
    FROM problems AS p CROSS JOIN LATERAL (SELECT p.body::jsonb AS b) AS doc;
    CREATE VIEW known_errors_v AS
    SELECT k.id, 'KE-' || lpad(k.id::text, 6, '0') AS number, k.state, b ->> 'title' AS title,
           (b ->> 'matched')::bigint AS matched,
           to_timestamp((b ->> 'created_at')::float8) AS created_at,
           to_timestamp(k.updated_at) AS updated_at, b AS body
    FROM known_errors AS k CROSS JOIN LATERAL (SELECT k.body::jsonb AS b) AS doc;
    CREATE VIEW record_log_v AS
    SELECT seq, kind, record_id, to_timestamp(at) AS at, actor, action, detail::jsonb AS detail
    FROM record_log;
    CREATE VIEW occurrences_v AS
    SELECT incident_id, occurrence, signature, to_timestamp(at) AS at FROM occurrences;
    """,
    # 3: every saved change is announced on the channel `correlator_changes` (its id), at commit:
    # the processes of the cluster keep their change windows current (correlator/changes/feed.py).
    """
    CREATE FUNCTION correlator_changes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('correlator_changes', NEW.id::text);
        RETURN NULL;
    END $$;
    CREATE TRIGGER changes_notify AFTER INSERT OR UPDATE ON changes
        FOR EACH ROW EXECUTE FUNCTION correlator_changes_notify();
    """,
    # 4: the span a change takes on a timeline (what it really took once started, else its planned
    # window), computed by PostgreSQL from the document, so that a period's changes are one indexed
    # query (GET /api/v1/annotations) and the writers stay unaware of it.
    """
    ALTER TABLE changes
        ADD COLUMN span_start DOUBLE PRECISION GENERATED ALWAYS AS (COALESCE(
            (body::jsonb ->> 'started_at')::float8, (body::jsonb ->> 'start')::float8)) STORED,
        ADD COLUMN span_end DOUBLE PRECISION GENERATED ALWAYS AS (CASE
            WHEN body::jsonb ->> 'started_at' IS NOT NULL AND body::jsonb ->> 'finished_at' IS NOT NULL
            THEN (body::jsonb ->> 'finished_at')::float8 ELSE (body::jsonb ->> 'end')::float8 END) STORED;
    CREATE INDEX changes_span_end ON changes(span_end);
    """,
    # 5: a version per record (store.py): a save names the version it read and is refused when
    # another process saved since. Existing records start at 1, as a new one does.
    "\n".join(
        f"ALTER TABLE {kind} ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 1;" for kind in KINDS
    ),
]


class PgRecordStore:
    def __init__(self, dsn: str) -> None:
        self._pg = PgPool(dsn, "changes.dsn or storage.dsn", "records", MIGRATIONS, "record store")

    @property
    def pool(self) -> Any:
        return self._pg.pool

    async def open(self) -> None:
        await self._pg.open()

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
        body = orjson.dumps(doc).decode()
        async with self.pool.acquire() as conn, conn.transaction():
            if record_id:
                status = await conn.execute(
                    f"UPDATE {kind} SET state=$1, updated_at=$2, body=$3, version=version+1"  # noqa: S608
                    " WHERE id=$4 AND version=$5",
                    state,
                    at,
                    body,
                    record_id,
                    version,
                )
                if status != "UPDATE 1":  # rolled back with the transaction: nothing written
                    raise RecordConflict(kind, record_id, version)
            else:
                record_id = await conn.fetchval(
                    f"INSERT INTO {kind}(state, updated_at, body) VALUES ($1, $2, $3) RETURNING id",  # noqa: S608
                    state,
                    at,
                    body,
                )
            if log:
                await conn.executemany(
                    "INSERT INTO record_log(kind, record_id, at, actor, action, detail)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    [
                        (kind, record_id, e.at, e.actor, e.action, orjson.dumps(e.detail).decode())
                        for e in log
                    ],
                )
        return int(record_id)

    async def get(self, kind: Kind, record_id: int) -> dict[str, Any] | None:
        assert kind in KINDS
        row = await self.pool.fetchrow(f"SELECT body, version FROM {kind} WHERE id = $1", record_id)  # noqa: S608
        return _doc(record_id, row["body"], row["version"]) if row is not None else None

    async def records(
        self, kind: Kind, states: tuple[str, ...] = (), limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        assert kind in KINDS
        w = Where(postgres=True).among("state", states)
        sql, args = w.page(f"SELECT id, body, version FROM {kind}", "id", cursor, limit, probe=False)  # noqa: S608
        rows = await self.pool.fetch(sql, *args)
        return [(int(r["id"]), _doc(int(r["id"]), r["body"], r["version"])) for r in rows]

    async def changes_during(
        self, since: float, until: float, limit: int = 1000, cursor: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        w = Where(postgres=True).cmp("span_end", ">=", since).cmp("span_start", "<", until)
        sql, args = w.page("SELECT id, body, version FROM changes", "id", cursor, limit, probe=False)
        rows = await self.pool.fetch(sql, *args)
        return [(int(r["id"]), _doc(int(r["id"]), r["body"], r["version"])) for r in rows]

    async def log(self, kind: Kind, record_id: int) -> list[LogEntry]:
        rows = await self.pool.fetch(
            "SELECT seq, at, actor, action, detail FROM record_log WHERE kind = $1 AND record_id = $2"
            " ORDER BY seq",
            kind,
            record_id,
        )
        return [LogEntry(r["at"], r["actor"], r["action"], orjson.loads(r["detail"]), r["seq"]) for r in rows]

    async def add_occurrences(self, occurrences: list[Occurrence]) -> set[tuple[int, int]]:
        if not occurrences:
            return set()
        rows = await self.pool.fetch(
            "INSERT INTO occurrences(incident_id, occurrence, signature, at)"
            " SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::float8[])"
            " ON CONFLICT DO NOTHING RETURNING incident_id, occurrence",
            [o.incident_id for o in occurrences],
            [o.occurrence for o in occurrences],
            [o.signature for o in occurrences],
            [o.at for o in occurrences],
        )
        return {(int(r["incident_id"]), int(r["occurrence"])) for r in rows}

    async def occurrences_since(self, since: float) -> list[tuple[str, int, float]]:
        rows = await self.pool.fetch(
            "SELECT signature, incident_id, at FROM occurrences WHERE at >= $1 ORDER BY at", since
        )
        return [(r["signature"], int(r["incident_id"]), r["at"]) for r in rows]

    async def trend(self, since: float, limit: int) -> list[Trend]:
        rows = await self.pool.fetch(
            "SELECT signature, COUNT(*) AS n, MAX(at) AS last FROM occurrences WHERE at >= $1"
            " GROUP BY signature ORDER BY COUNT(*) DESC, MAX(at) DESC LIMIT $2",
            since,
            limit,
        )
        return [Trend(r["signature"], int(r["n"]), r["last"]) for r in rows]

    async def ping(self) -> bool:
        try:
            await self.pool.fetchval("SELECT 1")
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self._pg.close()


def _doc(record_id: int, body: str, version: int) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(body)
    doc["id"] = record_id
    doc["version"] = int(version)
    return doc
