"""EventStore.fold on SQLite and PostgreSQL: a de-duplicated event's count and last_seen grow in the
store, idempotently; SQLite databases of schema 1 migrate."""

from __future__ import annotations

import sqlite3

import aiosqlite
import orjson
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


# Attributes that test how the body is patched: text that is not ASCII or needs escapes, integers
# past 2**63, floats orjson writes with an exponent or a sign, and nested keys named like the
# fields a fold changes (the body's own `count` and `last_seen` are its last keys).
ODD = {
    "text": 'snow \u2603 "quoted" \\ \n\t\x01\x7f \U0001f600 ,"count":9}',
    "big": 2**64 - 1,
    "negative": -(2**63),
    "floats": [1e16, -0.0, 1e-7, 1.5e300, 0.1],
    "nested": {"count": 7, "last_seen": 1.0, "deeper": [{"count": [1, {"count": 2}]}]},
    "count": "an attribute, not the count",
    "": None,
}


def odd_events(postgres: bool) -> list[Event]:
    events = [
        Event("odd-1", 100.0, 100.5, "webhook:\u00e9", "h\u00f4te", "t", attributes=dict(ODD)),
        Event("odd-2 \u2603", 1712345678.123456, 1712345678.5, "s", "h", "t", message="m", attributes={}),
        Event("odd-3", -5.25, 0.0, "s", "h", "t", attributes={"deep": [[[[{"count": 1}]]]]}),
    ]
    if not postgres:  # PostgreSQL text refuses U+0000 at the write already
        events[2].attributes["nul"] = "a\x00b"
    return events


async def stored_rows(store) -> dict[str, tuple[object, int, float]]:
    """id -> (body as stored, count, last_seen): the raw row, not an event read back."""
    if isinstance(store, PgEventStore):
        rows = await store.pool.fetch("SELECT id, body, count, last_seen FROM events")
        return {r["id"]: (r["body"], r["count"], r["last_seen"]) for r in rows}
    rows = await store.db.execute_fetchall("SELECT id, body, count, last_seen FROM events")
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def whole(e: Event, postgres: bool) -> object:
    """The body the fold wrote before it patched the stored one: the folded event serialised whole."""
    body = orjson.dumps(e.to_dict())
    return body.decode() if postgres else body


async def test_a_fold_stores_the_body_of_the_folded_event_serialised_whole(store):
    postgres = isinstance(store, PgEventStore)
    events = odd_events(postgres)
    await store.write(events)
    for n, e in enumerate(events):
        e.count += 10 + n
        e.last_seen = 1712345699.987654321 + n  # more digits than a float keeps
    events[2].last_seen = 1e16  # orjson: 1e+16
    assert await store.fold([*events, events[0]]) == 3
    rows = await stored_rows(store)
    for e in events:
        assert rows[e.id] == (whole(e, postgres), e.count, e.last_seen)
        (back,) = (await store.query(EventQuery(host=e.host, since=e.time, until=e.time + 1e-3))).events
        assert back == e


async def test_a_fold_delivered_again_or_with_a_lower_count_leaves_the_row_as_it_is(store):
    postgres = isinstance(store, PgEventStore)
    events = odd_events(postgres)
    await store.write(events)
    folded = events[0]
    folded.count, folded.last_seen = 5, 300.0
    assert await store.fold([folded]) == 1
    before = await stored_rows(store)
    assert await store.fold([folded]) == 0  # the same batch again after a crash
    lower = Event.from_wire({**folded.to_dict(), "count": 4, "last_seen": 400.0})
    assert await store.fold([lower]) == 0  # an older fold: a later last_seen does not count
    assert await stored_rows(store) == before


async def test_write_and_fold_stores_what_write_then_fold_store(store, tmp_path):
    postgres = isinstance(store, PgEventStore)
    earlier, later = odd_events(postgres), [event("new-1"), event("new-2", count=3, last_seen=200.0)]
    await store.write(earlier)
    for e in earlier[:2]:
        e.count, e.last_seen = e.count + 1, e.last_seen + 1.0
    assert await store.write_and_fold([*later, earlier[2]], [earlier[0], earlier[1], earlier[0]]) == 2
    assert await store.write_and_fold([], [earlier[0]]) == 0  # delivered again: nothing new
    assert await store.write_and_fold(later, []) == 0
    rows = {
        # SQLite keeps an inserted body as the text json_each gave, a folded one as a BLOB
        id_: (body.encode() if isinstance(body, str) and not postgres else body, count, last_seen)
        for id_, (body, count, last_seen) in (await stored_rows(store)).items()
    }
    assert rows == {e.id: (whole(e, postgres), e.count, e.last_seen) for e in earlier + later}


async def test_sqlite_write_and_fold_is_all_or_nothing(tmp_path):
    """A fold that fails takes back the write beside it, so the two calls apart can start over."""
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
        await store.write([event("kept")])
        await store.db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            await store.write_and_fold([event("new")], [event("kept", count=2)])
        await store.db.execute("DROP TRIGGER refuse")
        assert await store.known(["new"]) == set()
        assert not store.db.in_transaction
        assert await store.write_and_fold([event("new")], [event("unknown", count=2)]) == 1
    finally:
        await store.close()


async def test_sqlite_a_fold_into_a_damaged_body_updates_the_row_and_keeps_the_bytes(tmp_path):
    """Only a damaged file holds a body that is not JSON; patching it would fail every batch that
    folds into it, retried for ever as if the store were down."""
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    try:
        await store.db.execute(
            "INSERT INTO events(id, time, host, type, severity, source, fingerprint, body)"
            " VALUES ('broken', 1, 'h', 't', 'info', 's', 'f', x'7b6e6f74')"  # '{not'
        )
        await store.write([event("fine")])
        assert (
            await store.write_and_fold([event("new")], [event("broken", 3, 9.0), event("fine", 2, 8.0)]) == 1
        )
        rows = await stored_rows(store)
        assert rows["broken"] == (b"{not", 3, 9.0)
        assert rows["fine"][1:] == (2, 8.0) and orjson.loads(rows["fine"][0])["count"] == 2
    finally:
        await store.close()
