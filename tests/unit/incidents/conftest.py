"""Fixtures: the incident store on SQLite and on PostgreSQL (same tests, both back ends)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.incidents.model import ACTIVE
from correlator.incidents.pg_store import PgIncidentStore
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import IncidentSettings, parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.incidents.store import IncidentStore
from correlator.responses import IncidentRequest
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]

T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], IncidentStore]:
    """A function returning a new (unopened) store on the same database: call twice for a restart."""
    if request.param == "sqlite":
        return lambda: SqliteIncidentStore(tmp_path / "incidents.db")
    dsn = request.getfixturevalue("pg_dsn")
    await reset_pg(dsn)
    return lambda: PgIncidentStore(dsn)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def make_service(store_factory, clock):
    """make_service(settings or raw dict) -> an opened IncidentService; closed after the test."""
    opened: list[IncidentService] = []

    async def factory(settings: IncidentSettings | dict | None = None) -> IncidentService:
        if not isinstance(settings, IncidentSettings):
            settings = parse_settings(settings or {})
        svc = IncidentService(store_factory(), settings, clock)
        await svc.open()
        opened.append(svc)
        return svc

    yield factory
    for svc in opened:
        await svc.close()
    for svc in opened:
        if isinstance(svc.store, SqliteIncidentStore):
            assert active_key_duplicates(svc.store.path) == []


def active_key_duplicates(path: Path) -> list[str]:
    """Keys with more than one active incident in a SQLite incident store. No index refuses them
    there (the only writer keeps one per key: docs/architecture.md), so the tests look after each
    test that used the store."""
    active = [s.value for s in ACTIVE]
    marks = ",".join("?" * len(active))
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            f"SELECT key FROM incidents WHERE key IS NOT NULL AND status IN ({marks})"
            " GROUP BY key HAVING COUNT(*) > 1 ORDER BY key",
            active,
        ).fetchall()
    return [r[0] for r in rows]


def event(
    t: float,
    host: str = "core-sw1",
    severity: Severity = Severity.MAJOR,
    type_: str = "IF-MIB::linkDown",
    **kw,
) -> Event:
    return Event(
        id=kw.pop("id", f"ev-{t}-{host}-{severity}"),
        time=t,
        received=t,
        source="test",
        host=host,
        type=type_,
        severity=severity,
        **kw,
    )


def request(action: str, t: float, key: str = "core-sw1/Gi0/1", **kw) -> IncidentRequest:
    sev = kw.pop("severity", Severity.CLEAR if action == "resolve" else Severity.MAJOR)
    host = kw.pop("host", "core-sw1")
    return IncidentRequest(action, key, event(t, host, sev), kw.pop("rule", "link-down"), **kw)  # type: ignore[arg-type]
