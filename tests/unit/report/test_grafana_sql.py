"""The SQL annotation queries of docs/report.md, run against a real PostgreSQL holding incidents and
changes, give the same marks as GET /api/v1/annotations (correlator/report/annotations.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from correlator.changes.model import Change
from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.event import parse_time
from correlator.incidents.pg_store import PgIncidentStore
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.records.postgres import PgRecordStore
from correlator.report.annotations import change_rows, incident_rows
from correlator.report.compute import all_records, incidents_in
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]
DOC = Path(__file__).resolve().parents[3] / "docs" / "report.md"
T0 = 1_800_000_000.0


def documented_sql() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


async def _no_emit(events: Any, source: str) -> None:
    """Change lifecycle events go nowhere here."""


async def test_the_documented_sql_gives_the_endpoints_marks(pg_dsn: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    await reset_pg(pg_dsn)
    clock = Clock(T0)
    incidents = IncidentService(PgIncidentStore(pg_dsn), parse_settings({}), clock)
    records = PgRecordStore(pg_dsn)
    await incidents.open()
    await records.open()
    try:
        changes = ChangeService(records, ChangeSettings(), clock, _no_emit, incidents)
        await changes.open()
        p1 = await incidents.create(
            "noc", {"title": "core down", "host": "core-1", "impact": 1, "urgency": 1}
        )
        await incidents.create("noc", {"title": "printer", "host": "pr-7"})  # P5: not annotated
        await incidents.create(
            "noc", {"title": "uplink", "host": "dist-1", "service": "campus", "impact": 2, "urgency": 2}
        )
        ran = await changes.create(
            "noc", {"title": "upgrade", "start": T0 + 600, "end": T0 + 4000, "cis": ["core-1"]}
        )
        await changes.create("noc", {"title": "later", "start": T0 + 7200, "end": T0 + 9000})
        for action in ("approve", "start"):
            await changes.act(ran.id, action, "noc")
        clock.advance_to(T0 + 1800)
        await incidents.act(p1.id, "resolve", "noc", {})
        await changes.act(ran.id, "complete", "noc")
        start, end = T0 - 3600, T0 + 8000
        expected_incidents = incident_rows(
            await incidents_in(incidents.store, start, end), ("P1", "P2", "P3")
        )
        all_changes = [Change.from_doc(d) for d in await all_records(records, "changes")]
        expected_changes = change_rows(all_changes, start, end)
    finally:
        await incidents.close()
        await records.close()
    assert len(expected_incidents) == 2 and len(expected_changes) == 2
    incident_sql, change_sql = documented_sql()
    conn = await asyncpg.connect(pg_dsn)
    try:
        for sql, expected, with_tags in (
            (incident_sql, expected_incidents, True),
            (change_sql, expected_changes, False),
        ):
            sql = sql.replace("$__unixEpochFrom()", repr(start)).replace("$__unixEpochTo()", repr(end))
            got = [
                (r["time"].timestamp(), r["timeend"].timestamp() if r["timeend"] else None, r["text"])
                + ((r["tags"],) if with_tags else ())
                for r in await conn.fetch(sql)
            ]
            want = [
                (parse_time(e["time"]), parse_time(e["timeEnd"]) if e["timeEnd"] else None, e["title"])
                + ((e["tags"],) if with_tags else ())
                for e in expected
            ]
            assert got == want
    finally:
        await conn.close()
