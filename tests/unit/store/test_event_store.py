"""The EventStore contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from correlator.event import Event, Severity
from correlator.store import EventQuery
from correlator.store.postgres import PgEventStore
from correlator.store.sqlite import SqliteEventStore
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]

T0 = 1_800_000_000.0


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


def ev(i: int, **kw) -> Event:
    base = {"host": f"h{i % 2}", "type": "T", "severity": Severity.MINOR if i % 3 else Severity.CRITICAL}
    base.update(kw)
    return Event(id=f"e{i}", time=T0 + i, received=T0 + i, source="test", **base)


async def test_write_is_idempotent_by_id(store):
    assert await store.write([ev(0), ev(1)]) == 2
    assert await store.write([ev(1), ev(2)]) == 1
    assert await store.write([ev(3), ev(3)]) == 1  # twice in one batch
    assert await store.write([]) == 0
    assert await store.count() == 4


async def test_known_names_the_stored_ids_among_those_asked(store):
    await store.write([ev(0), ev(1)])
    assert await store.known(["e1", "e7", "e0"]) == {"e0", "e1"}
    assert await store.known([]) == set()


async def test_round_trip_keeps_every_field(store):
    e = ev(5, resource="Gi0/1", message="down", attributes={"ifIndex": 3, "nested": {"a": [1, 2]}})
    e.count, e.last_seen = 4, T0 + 99
    await store.write([e])
    (got,) = (await store.query(EventQuery())).events
    assert got == e


async def test_filters_and_paging(store):
    await store.write([ev(i) for i in range(10)])

    async def ids(**kw) -> set[str]:
        return {e.id for e in (await store.query(EventQuery(limit=100, **kw))).events}

    assert await ids(host="h0") == {f"e{i}" for i in range(0, 10, 2)}
    assert await ids(severities=("critical",)) == {"e0", "e3", "e6", "e9"}
    assert await ids(since=T0 + 5, until=T0 + 7) == {"e5", "e6"}
    assert await ids(source="nope") == set()
    page = await store.query(EventQuery(limit=4))
    assert [e.id for e in page.events] == ["e9", "e8", "e7", "e6"] and page.next_cursor is not None
    rest = await store.query(EventQuery(limit=100, cursor=page.next_cursor))
    assert [e.id for e in rest.events] == [f"e{i}" for i in range(5, -1, -1)] and rest.next_cursor is None


async def test_retention_and_ping(store):
    await store.write([ev(i) for i in range(10)])
    assert await store.delete_older_than(T0 + 4) == 4
    assert await store.count() == 6
    assert await store.ping()


async def test_reopening_keeps_data_and_applies_no_migration_twice(store):
    await store.write([ev(1)])
    await store.close()
    await store.open()
    assert await store.count() == 1


async def test_postgres_refuses_a_newer_schema(pg_dsn):
    import asyncpg

    await reset_pg(pg_dsn)
    s = PgEventStore(pg_dsn)
    await s.open()
    await s.close()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("UPDATE correlator_schema SET version = 99 WHERE component = 'events'")
    await conn.close()
    with pytest.raises(RuntimeError, match="events schema version 99 is newer than this correlator knows"):
        await PgEventStore(pg_dsn).open()


async def test_unreachable_postgres_is_a_clear_configuration_error():
    from correlator.errors import ConfigError
    from tests.support.daemon import free_port

    dsn = f"postgresql://u:hunter2@127.0.0.1:{free_port()}/db"
    with pytest.raises(
        ConfigError, match=r"'storage.dsn': cannot use PostgreSQL at postgresql://u:\*\*\*@127"
    ) as e:
        await PgEventStore(dsn).open()
    assert "hunter2" not in str(e.value)


async def test_fold_grows_the_repeat_count_idempotently(store):
    first = ev(0)
    await store.write([first])
    first.count, first.last_seen = 3, T0 + 60
    assert await store.fold([first, first]) == 1
    assert await store.fold([ev(0, count=2)]) == 0  # an older fold delivered again changes nothing
    [stored] = (await store.query(EventQuery())).events
    assert (stored.count, stored.last_seen) == (3, T0 + 60)
    assert await store.fold([]) == 0


async def test_position_and_events_after_a_position_oldest_first(store):
    assert await store.position() == 0
    await store.write([ev(0), ev(1), ev(2)])
    top = await store.position()
    rows = await store.after(0, 10)
    assert [e.id for _, e in rows] == ["e0", "e1", "e2"] and rows[-1][0] == top
    assert [e.id for _, e in await store.after(rows[0][0], 1)] == ["e1"]
    assert await store.after(top, 10) == []


async def test_events_after_a_position_of_some_hosts_only(store):
    await store.write([ev(i) for i in range(6)])  # h0, h1, h0, ...
    [(first, _)] = await store.after(0, 1)
    assert sorted(await store.hosts_after(first)) == ["h0", "h1"]
    rows = await store.after(first, 2, ["h1", "elsewhere"])
    assert [e.id for _, e in rows] == ["e1", "e3"]
    assert [e.id for _, e in await store.after(rows[-1][0], 10, ["h1"])] == ["e5"]
    assert await store.after(0, 10, []) == []
    assert await store.hosts_after(await store.position()) == []


async def test_busiest_hosts_sums_repeats_in_the_period_most_first(store):
    events = [ev(i) for i in range(10)]  # h0: even i, h1: odd i
    events[1].count = 9  # a folded repeat counts as what was received
    events.append(ev(10, host="h2"))
    await store.write(events)
    assert await store.busiest_hosts(T0, T0 + 11, 10) == [("h1", 13), ("h0", 5), ("h2", 1)]
    assert await store.busiest_hosts(T0 + 2, T0 + 4, 10) == [
        ("h0", 1),
        ("h1", 1),
    ]  # [since, until), ties by name
    assert await store.busiest_hosts(T0, T0 + 11, 1) == [("h1", 13)]
    assert await store.busiest_hosts(T0 + 100, T0 + 200, 10) == []
