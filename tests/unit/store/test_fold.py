"""EventStore.fold on SQLite and PostgreSQL: a de-duplicated event's count and last_seen grow in the
store, idempotently, and the repeats folded into it are known like stored events; SQLite databases
of schema 1 migrate."""

from __future__ import annotations

import sqlite3

import aiosqlite
import orjson
import pytest

from correlator.event import Event, dumps_events
from correlator.pipeline import Pipeline
from correlator.queue.journal import JournalQueue
from correlator.rules.reload import RulesHolder
from correlator.rules.stage import FilterStage
from correlator.store import EventQuery
from correlator.store.postgres import PgEventStore
from correlator.store.sqlite import MIGRATIONS, SqliteEventStore, migrate
from tests.support.postgres import pg_dsn, reset_pg
from tests.unit.store.test_dead_letters import drain

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
        assert await store.known(["old", "new"]) == {"old"}
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


async def test_folded_repeats_are_known_like_stored_events_until_retention(store):
    kept = event("kept")
    await store.write([kept])
    kept.count, kept.last_seen = 3, 120.0
    repeats = [event("r1"), Event("r2", 120.0, 120.0, "snmp", "sw1", "linkDown")]
    assert await store.write_and_fold([event("new")], [kept, kept], repeats) == 1
    assert await store.known(["kept", "new", "r1", "r2", "other"]) == {"kept", "new", "r1", "r2"}
    assert await store.count() == 2  # known, never stored
    kept.count, kept.last_seen = 4, 130.0
    assert await store.fold([kept], [Event("r3", 130.0, 130.0, "snmp", "sw1", "linkDown")]) == 1
    assert await store.fold([kept], [event("r1")]) == 0  # delivered again: nothing changes
    assert await store.known(["r1", "r3"]) == {"r1", "r3"}
    assert await store.delete_older_than(125.0) == 2  # the repeats go with the events of their time
    assert await store.known(["r1", "r2", "r3"]) == {"r3"}


async def refuse_folded(store, refuse: bool) -> None:
    """Make the store refuse (or take again) what is written to its table of folded repeats."""
    if isinstance(store, PgEventStore):
        if refuse:
            await store.pool.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'refused'; END $$;"
                " CREATE TRIGGER refuse BEFORE INSERT ON folded FOR EACH STATEMENT EXECUTE FUNCTION refuse()"
            )
        else:
            await store.pool.execute("DROP TRIGGER refuse ON folded; DROP FUNCTION refuse()")
    elif refuse:
        await store.db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON folded BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        await store.db.execute("DROP TRIGGER refuse")


async def test_an_event_is_written_with_its_folded_repeats_or_not_at_all(store):
    """The count a written event carries includes the repeats folded into it in the same batch:
    written without their ids, a crash before they are kept would count those repeats again."""
    kept = event("kept", count=3, last_seen=120.0)
    repeats = [event("r1"), event("r2")]
    await refuse_folded(store, True)
    with pytest.raises(Exception, match="refused"):
        await store.write_and_fold([kept, event("other")], [kept, kept], repeats)
    await refuse_folded(store, False)
    assert await store.known(["kept", "other", "r1", "r2"]) == set()
    assert await store.write_and_fold([kept, event("other")], [kept, kept], repeats) == 2
    assert await store.known(["kept", "other", "r1", "r2"]) == {"kept", "other", "r1", "r2"}
    await store.write([event("stored")])  # the COPY's way back when an id is stored already
    await refuse_folded(store, True)
    with pytest.raises(Exception, match="refused"):
        await store.write_and_fold([event("new"), event("stored")], [kept], [event("r3")])
    await refuse_folded(store, False)
    assert await store.known(["new", "r3"]) == set()
    assert await store.write_and_fold([event("new"), event("stored")], [kept], [event("r3")]) == 1
    assert await store.known(["new", "r3"]) == {"new", "r3"}


DEDUP = "rules:\n  - {name: repeats, match: {type: linkDown}, dedup: 10m}\n"


def fresh_level1(rules_dir) -> Pipeline:
    """Level 1 with a dedup rule as a daemon builds it at start: its windows empty."""
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "dedup.yaml").write_text(DEDUP)
    holder = RulesHolder(rules_dir)
    holder.load_initial()
    return Pipeline([FilterStage(holder)])


async def test_a_batch_whose_repeats_were_folded_changes_nothing_when_delivered_again(store, tmp_path):
    """A crash after the store committed a batch and its folds but before the journal forgot it:
    the journal delivers it again to a daemon whose de-duplication windows start empty. Its repeats
    were never stored rows, yet the store knows them, so no count grows and no row appears."""
    pipeline = fresh_level1(tmp_path / "rules")
    earlier = [event("k1")]
    other = {"host": "sw2", "type": "linkDown"}
    batch = [
        event("r1"),  # folded into k1, stored by the batch before
        Event("k2", 100.0, 100.0, "snmp", **other),
        event("r2"),
        Event("r3", 100.0, 100.0, "snmp", **other),  # folded into k2, stored by this batch
    ]
    # The journal as a crash after the batch's store commit leaves it: the batch not yet deleted.
    crashed = JournalQueue(tmp_path / "crashed.db", max_events=100, retry_after=1.0, fsync=False)
    await crashed.open()
    await crashed.put(dumps_events(batch), len(batch), batch)
    await crashed.close()
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    try:
        for events in (earlier, batch):
            await q.put(dumps_events(events), len(events), events)
            await drain(q, store, pipeline=pipeline)
    finally:
        await q.close()
    counts = {e.id: e.count for e in (await store.query(EventQuery())).events}
    assert counts == {"k1": 3, "k2": 2}

    again = JournalQueue(tmp_path / "crashed.db", max_events=100, retry_after=1.0, fsync=False)
    assert await again.open() == len(batch)  # the next start: read back, delivered again
    try:
        await drain(again, store, pipeline=fresh_level1(tmp_path / "rules"))
    finally:
        await again.close()
    assert {e.id: e.count for e in (await store.query(EventQuery())).events} == counts
