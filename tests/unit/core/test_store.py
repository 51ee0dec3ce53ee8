"""The SQLite event store: idempotent batch writes, filters, paging, retention, schema versions."""

from __future__ import annotations

import aiosqlite
import pytest

from correlator.event import Event, Severity
from correlator.store import EventQuery
from correlator.store.sqlite import MIGRATIONS, SqliteEventStore


def ev(i: int, host: str = "h", sev: Severity = Severity.MINOR) -> Event:
    return Event(f"id{i}", 1000.0 + i, 1000.0 + i, "test", host, "T", sev, attributes={"n": i})


@pytest.fixture
async def store(tmp_path):
    s = SqliteEventStore(tmp_path / "events.db")
    await s.open()
    yield s
    await s.close()


async def test_write_is_idempotent_by_id(store):
    assert await store.write([ev(1), ev(2)]) == 2
    assert await store.write([ev(2), ev(3)]) == 1  # a redelivered batch stores nothing twice
    assert await store.count() == 3


async def test_round_trip_keeps_every_field(store):
    e = ev(1)
    e.count, e.last_seen, e.message, e.resource = 3, 1005.0, "msg", "if1"
    await store.write([e])
    page = await store.query(EventQuery())
    assert page.events == [e]


async def test_filters_and_cursor_paging(store):
    await store.write(
        [ev(i, host=f"h{i % 2}", sev=Severity.MAJOR if i % 3 == 0 else Severity.MINOR) for i in range(10)]
    )
    assert {e.id for e in (await store.query(EventQuery(host="h1"))).events} == {
        "id1",
        "id3",
        "id5",
        "id7",
        "id9",
    }
    assert {e.id for e in (await store.query(EventQuery(severities=("major",)))).events} == {
        "id0",
        "id3",
        "id6",
        "id9",
    }
    assert {e.id for e in (await store.query(EventQuery(since=1002, until=1004))).events} == {"id2", "id3"}
    seen, cursor = [], None
    while True:
        page = await store.query(EventQuery(limit=3, cursor=cursor))
        seen.extend(e.id for e in page.events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"id{i}" for i in reversed(range(10))]  # newest first, each once


async def test_retention_deletes_by_event_time(store):
    await store.write([ev(i) for i in range(10)])
    assert await store.delete_older_than(1005.0) == 5
    assert {e.id for e in (await store.query(EventQuery())).events} == {f"id{i}" for i in range(5, 10)}


async def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "events.db"
    async with aiosqlite.connect(path) as db:
        await db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    s = SqliteEventStore(path)
    with pytest.raises(RuntimeError, match="newer than this correlator knows"):
        await s.open()
    await s.close()
