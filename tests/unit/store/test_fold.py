"""SqliteEventStore.fold: a de-duplicated event's count and last_seen grow in the store, idempotently."""

from __future__ import annotations

import aiosqlite

from correlator.event import Event
from correlator.store import EventQuery
from correlator.store.sqlite import MIGRATIONS, SqliteEventStore, migrate


def event(i: str = "e1", count: int = 1, last_seen: float = 0.0) -> Event:
    return Event(i, 100.0, 100.0, "snmp", "sw1", "linkDown", count=count, last_seen=last_seen)


async def test_fold_updates_count_and_last_seen(tmp_path):
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
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
    finally:
        await store.close()


async def test_migration_from_version_1_keeps_events(tmp_path):
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
