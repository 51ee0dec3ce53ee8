"""EventStore.fold on SQLite and PostgreSQL: a de-duplicated event's count and last_seen grow in the
store, idempotently; SQLite databases of schema 1 migrate."""

from __future__ import annotations

import aiosqlite
import pytest

from correlator.event import Event
from correlator.store import EventQuery
from correlator.store.postgres import PgEventStore
from correlator.store.sqlite import MIGRATIONS, SqliteEventStore, migrate
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteEventStore(tmp_path / "events.db")
    else:
        dsn = request.getfixturevalue("pg_dsn")
        await reset_pg(dsn)
        s = PgEventStore(dsn)
    await s.open()
    yield s
    await s.close()


def event(i: str = "e1", count: int = 1, last_seen: float = 0.0) -> Event:
    return Event(i, 100.0, 100.0, "snmp", "sw1", "linkDown", count=count, last_seen=last_seen)


async def test_fold_updates_count_and_last_seen(store):
    first = event()
    await store.write([first])
    first.count, first.last_seen = 3, 160.0
    assert await store.fold([first, first]) == 1
    [stored] = (await store.query(EventQuery())).events
    assert (stored.count, stored.last_seen) == (3, 160.0)
    stale = event(count=2, last_seen=130.0)  # an older fold delivered again after a crash
    assert await store.fold([stale]) == 0
    [stored] = (await store.query(EventQuery())).events
    assert stored.count == 3
    assert await store.fold([event("unknown", count=5)]) == 0
    assert await store.fold([]) == 0


async def test_an_event_written_with_a_count_keeps_it(store):
    await store.write([event("folded-in-batch", count=4, last_seen=150.0)])
    [stored] = (await store.query(EventQuery())).events
    assert (stored.count, stored.last_seen) == (4, 150.0)
    folded = event("folded-in-batch", count=4, last_seen=150.0)
    assert await store.fold([folded]) == 0  # the same count again changes nothing


async def test_sqlite_migration_from_version_1_keeps_events(tmp_path):
    path = tmp_path / "events.db"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await migrate(db, MIGRATIONS[:1])
        await db.execute(
            "INSERT INTO events(id, time, host, type, severity, source, fingerprint, body)"
            " VALUES (?,?,?,?,?,?,?,?)",
            ("old", 50.0, "h", "t", "info", "s", "f", b"{}"),
        )
    store = SqliteEventStore(path)
    await store.open()
    try:
        rows = list(await store.db.execute_fetchall("SELECT count, last_seen FROM events WHERE id = 'old'"))
        assert rows == [(1, 50.0)]
    finally:
        await store.close()
