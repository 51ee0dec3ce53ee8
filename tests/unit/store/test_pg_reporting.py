"""The PostgreSQL reporting views (docs/incidents.md "Reporting with SQL") against a real server: the
migration on a fresh database and on one at the previous version, timestamptz and jsonb columns with
the values the stores wrote, and the documented example queries run as written."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.deadletter import DeadLetter
from correlator.event import Event, Severity
from correlator.incidents import pg_store
from correlator.incidents.lifecycle import Changes
from correlator.incidents.model import Incident, Status
from correlator.incidents.pg_store import PgIncidentStore
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.records import postgres as records_pg
from correlator.records.postgres import PgRecordStore
from correlator.store import postgres as events_pg
from correlator.store.postgres import PgEventStore
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]
asyncpg = pytest.importorskip("asyncpg")

DOC = Path(__file__).resolve().parents[3] / "docs" / "incidents.md"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
COMPONENTS = {"events": events_pg, "incidents": pg_store, "records": records_pg}
VIEWS = {
    "events_v": "events",
    "dead_letters_v": "events",
    "incidents_v": "incidents",
    "incident_log_v": "incidents",
    "changes_v": "records",
    "problems_v": "records",
    "known_errors_v": "records",
    "record_log_v": "records",
    "occurrences_v": "records",
}
TIMES = {
    "time", "last_seen", "at", "opened_at", "acknowledged_at", "resolved_at", "closed_at", "updated_at",
    "planned_start", "planned_end", "started_at", "finished_at", "created_at",
}  # fmt: skip
DOCUMENTS = {"body", "detail"}


async def _no_emit(events: Any, source: str) -> None:
    """Change lifecycle events go nowhere here."""


@dataclass
class Written:
    """What went in through the stores, to compare with what the views give back."""

    p1: Incident
    p4: Incident
    event: Event
    change_id: int
    problem_id: int


async def write_through_stores(dsn: str) -> Written:
    """Incidents, a change running on core-1, a problem, events and a dead letter, all through the
    stores' own code paths; one incident is opened on core-1 while the change runs, then resolved."""
    clock = Clock(T0)
    incidents = IncidentService(PgIncidentStore(dsn), parse_settings({}), clock)
    records = PgRecordStore(dsn)
    events = PgEventStore(dsn)
    for opened in (incidents, records, events):
        await opened.open()
    try:
        changes = ChangeService(records, ChangeSettings(), clock, _no_emit, incidents)
        await changes.open()
        change = await changes.create(
            "noc", {"title": "upgrade", "start": T0 + 60, "end": T0 + 7200, "cis": ["core-1"]}
        )
        clock.advance_to(T0 + 60)
        for action in ("approve", "start"):
            await changes.act(change.id, action, "noc")
        clock.advance_to(T0 + 120)
        p1 = await incidents.create(
            "noc", {"title": "core down", "host": "core-1", "impact": 1, "urgency": 1}
        )
        p4 = await incidents.create("noc", {"title": "printer", "host": "pr-7", "impact": 3, "urgency": 2})
        clock.advance_to(T0 + 120 + 1800)
        await incidents.act(p1.id, "resolve", "noc", {})
        problem_id = await records.save(
            "problems", 0, "open", {"title": "flapping uplink", "opened_at": T0 + 300, "incidents": [p1.id]},
            T0 + 300, [],
        )  # fmt: skip
        event = Event(
            message="link down", id="ev-1", time=T0 + 90, received=T0 + 91, source="webhook:generic",
            host="core-1", type="LinkDown", severity=Severity.MAJOR, attributes={"ifIndex": 7},
        )  # fmt: skip
        await events.write([event])
        await events.add_dead_letters(
            [DeadLetter("malformed", "webhook:generic", "bad-1", "no host", "{}", T0 + 5)]
        )
        stored_p1 = await incidents.store.get(p1.id)
        stored_p4 = await incidents.store.get(p4.id)
        assert stored_p1 is not None and stored_p4 is not None
        return Written(stored_p1, stored_p4, event, change.id, problem_id)
    finally:
        for opened in (incidents, records, events):
            await opened.close()


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[Any]:
    await reset_pg(pg_dsn)
    c = await asyncpg.connect(pg_dsn)
    yield c
    await c.close()


async def versions(conn: Any) -> dict[str, int]:
    return {r["component"]: r["version"] for r in await conn.fetch("SELECT * FROM correlator_schema")}


async def view_columns(conn: Any) -> dict[tuple[str, str], str]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = ANY($1::text[])",
        list(VIEWS),
    )
    return {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}


async def test_fresh_database_gets_every_view_typed_timestamptz_and_jsonb(conn: Any, pg_dsn: str) -> None:
    await write_through_stores(pg_dsn)
    assert await versions(conn) == {name: len(module.MIGRATIONS) for name, module in COMPONENTS.items()}
    columns = await view_columns(conn)
    assert {view for view, _ in columns} == set(VIEWS)
    for (view, column), data_type in columns.items():
        if column in TIMES:
            assert data_type == "timestamp with time zone", (view, column)
        if column in DOCUMENTS:
            assert data_type == "jsonb", (view, column)
    assert columns[("events_v", "epoch")] == "double precision"


async def test_database_at_the_previous_version_is_upgraded_with_its_rows(
    conn: Any, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    versioned = records_pg.MIGRATIONS[-1]
    claims = next(m for m in events_pg.MIGRATIONS if "claimed_at" in m)
    committed = pg_store.MIGRATIONS[-1]
    for module in COMPONENTS.values():  # every component at the version before its views
        views = next(i for i, script in enumerate(module.MIGRATIONS) if "CREATE VIEW" in script)
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:views])
    # Today's record store writes the version column, and today's event store the dead letters'
    # claim columns (migrations that add them only where missing): the tables of the previous
    # version get them up front.
    monkeypatch.setattr(records_pg, "MIGRATIONS", [records_pg.MIGRATIONS[0] + versioned])
    before_views = events_pg.MIGRATIONS
    monkeypatch.setattr(events_pg, "MIGRATIONS", [*before_views[:-1], before_views[-1] + claims])
    # So does the incident store its commit token.
    monkeypatch.setattr(pg_store, "MIGRATIONS", [pg_store.MIGRATIONS[0] + committed])
    written = await write_through_stores(pg_dsn)
    assert await versions(conn) == {name: len(m.MIGRATIONS) for name, m in COMPONENTS.items()}
    assert not await view_columns(conn)
    monkeypatch.undo()
    for store in (PgIncidentStore(pg_dsn), PgRecordStore(pg_dsn), PgEventStore(pg_dsn)):
        await store.open()  # applies the newer migrations only
        await store.close()
    assert await versions(conn) == {name: len(m.MIGRATIONS) for name, m in COMPONENTS.items()}
    numbers = await conn.fetch("SELECT number FROM incidents_v ORDER BY id")
    assert [r["number"] for r in numbers] == [written.p1.human_id, written.p4.human_id]
    assert await conn.fetchval("SELECT count(*) FROM events_v") == 1
    assert await conn.fetchval("SELECT title FROM changes_v") == "upgrade"


def utc(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None else None


async def test_views_give_back_the_values_the_stores_wrote(conn: Any, pg_dsn: str) -> None:
    w = await write_through_stores(pg_dsn)
    for inc in (w.p1, w.p4):
        row = await conn.fetchrow("SELECT * FROM incidents_v WHERE id = $1", inc.id)
        assert row["number"] == inc.human_id and row["priority"] == inc.priority
        assert (row["status"], row["host"], row["title"], row["key"]) == (
            inc.status.value, inc.host, inc.title, inc.key,
        )  # fmt: skip
        for name in ("opened_at", "acknowledged_at", "resolved_at", "closed_at", "updated_at"):
            assert row[name] == utc(getattr(inc, name)), name
        assert orjson.loads(row["body"]) == inc.to_doc()
    assert w.p1.resolved_at == T0 + 1920 and w.p4.resolved_at is None  # both cases seen above
    log = await conn.fetch("SELECT * FROM incident_log_v WHERE incident_id = $1 ORDER BY seq", w.p1.id)
    assert log and all(r["at"].tzinfo is not None for r in log)
    assert isinstance(orjson.loads(log[0]["detail"]), dict)

    e = await conn.fetchrow("SELECT * FROM events_v")
    assert (e["id"], e["time"], e["last_seen"], e["epoch"]) == ("ev-1", utc(T0 + 90), utc(T0 + 90), T0 + 90)
    assert orjson.loads(e["body"]) == w.event.to_dict()
    assert await conn.fetchval("SELECT body -> 'attributes' ->> 'ifIndex' FROM events_v") == "7"
    dead = await conn.fetchrow("SELECT * FROM dead_letters_v")
    assert (dead["event_id"], dead["at"]) == ("bad-1", utc(T0 + 5))

    c = await conn.fetchrow("SELECT * FROM changes_v WHERE id = $1", w.change_id)
    assert (c["state"], c["planned_start"], c["planned_end"]) == ("in_progress", utc(T0 + 60), utc(T0 + 7200))
    assert (c["started_at"], c["finished_at"], c["withdrawn"]) == (utc(T0 + 60), None, False)
    p = await conn.fetchrow("SELECT * FROM problems_v WHERE id = $1", w.problem_id)
    assert (p["title"], p["opened_at"], p["resolved_at"], p["incident_count"]) == (
        "flapping uplink", utc(T0 + 300), None, 1,
    )  # fmt: skip
    assert await conn.fetchval("SELECT count(*) FROM record_log_v WHERE record_id = $1", w.change_id) > 0


def documented_queries() -> list[str]:
    section = DOC.read_text().split("## Reporting with SQL", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def grafana_macros(sql: str, start: float, end: float) -> str:
    """Expand the data source's macros as Grafana does (RFC 3339 bounds, epoch bounds)."""
    lo, hi = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end))
    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", rf"\1 BETWEEN '{lo}' AND '{hi}'", sql)
    return re.sub(r"\$__unixEpochFilter\(([\w.]+)\)", rf"\1 >= {int(start)} AND \1 <= {int(end)}", sql)


async def test_the_documented_queries_run_and_count_right(conn: Any, pg_dsn: str) -> None:
    w = await write_through_stores(pg_dsn)
    queries = documented_queries()
    assert len(queries) == 5
    results = [await conn.fetch(grafana_macros(sql, T0 - 86400, T0 + 86400)) for sql in queries]
    per_day, mttr, hosts, events, during_change = results
    day = datetime(2027, 1, 15, tzinfo=UTC)
    assert [tuple(r) for r in per_day] == [(day, w.p1.priority, 1), (day, w.p4.priority, 1)]
    week = datetime(2027, 1, 11, tzinfo=UTC)  # the Monday
    assert [tuple(r) for r in mttr] == [(week, w.p1.priority, 30.0)]
    assert [(r["host"], r["incidents"], r["last_opened"]) for r in hosts] == [
        ("core-1", 1, utc(T0 + 120)), ("pr-7", 1, utc(T0 + 120)),
    ]  # fmt: skip
    assert [tuple(r) for r in events] == [(datetime(2027, 1, 15, 8, tzinfo=UTC), "major", 1)]
    assert [(r["number"], r["change_title"]) for r in during_change] == [(w.p1.human_id, "upgrade")]
    outside = [await conn.fetch(grafana_macros(sql, T0 + 86400, T0 + 2 * 86400)) for sql in queries]
    assert outside == [[], [], [], [], []]


async def test_the_database_refuses_a_second_active_incident_per_key(conn: Any, pg_dsn: str) -> None:
    """Two writers on one database (two workers): the unique index on the active statuses lets only
    one active incident per correlation key exist; once it is resolved a new one may open."""
    first, second = PgIncidentStore(pg_dsn), PgIncidentStore(pg_dsn)
    await first.open()
    await second.open()
    try:
        one = Incident("link down", T0, key="core-1|LinkDown")
        await first.save(Changes(new=[one]))
        for status in (Status.NEW, Status.ON_HOLD):
            other = Incident("link down", T0 + 1, key="core-1|LinkDown", status=status)
            with pytest.raises(asyncpg.UniqueViolationError):
                await second.save(Changes(new=[other]))
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 1  # the refused batch left nothing
        one.status = Status.RESOLVED
        await first.save(Changes(dirty={id(one): one}))
        again = Incident("link down", T0 + 2, key="core-1|LinkDown")
        await second.save(Changes(new=[again]))
        active = await conn.fetch("SELECT id FROM incidents_v WHERE key = $1 AND status = 'new'", one.key)
        assert [r["id"] for r in active] == [again.id]
    finally:
        await first.close()
        await second.close()
