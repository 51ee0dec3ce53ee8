"""What the stores choose, on SQLite and PostgreSQL: a period's incidents and changes (GET
/api/v1/annotations asks only for those; the same rows as filtering everything, and a change outside
the period never leaves the store), and the incidents of an assignment group (the console's filter)."""

from __future__ import annotations

from typing import Any

from correlator.changes.model import Change, State
from correlator.incidents.store import IncidentQuery
from correlator.records import sqlite as records_sqlite
from correlator.records.sqlite import SqliteRecordStore
from correlator.report.annotations import change_rows
from correlator.report.compute import all_records, changes_during, incidents_in

from .conftest import HOUR, T0, event

DAY = 24 * HOUR


def _change(title: str, start: float, end: float, **kw: Any) -> Change:
    return Change(title=title, start=start, end=end, **kw)


# Spans relative to the period [T0, T0 + DAY): planned windows, and what changes really took.
CHANGES = [
    _change("long before", T0 - 10 * DAY, T0 - 9 * DAY),
    _change("ends as the period begins", T0 - HOUR, T0),
    _change("overlaps the start", T0 - HOUR, T0 + HOUR),
    _change("inside", T0 + HOUR, T0 + 2 * HOUR),
    _change(
        "planned inside, ran before",
        T0 + HOUR,
        T0 + 2 * HOUR,
        state=State.COMPLETED,
        started_at=T0 - 3 * DAY,
        finished_at=T0 - 3 * DAY + HOUR,
    ),
    _change(
        "planned before, ran into the period",
        T0 - 5 * DAY,
        T0 - 4 * DAY,
        state=State.FAILED,
        started_at=T0 - 5 * DAY,
        finished_at=T0 + HOUR,
    ),
    _change("starts as the period ends", T0 + DAY, T0 + DAY + HOUR),
    _change("long after", T0 + 9 * DAY, T0 + 10 * DAY),
]


async def test_the_store_returns_exactly_the_changes_of_a_period(backend):
    _, records = backend()
    await records.open()
    try:
        for c in CHANGES:
            await records.save("changes", 0, c.state.value, c.to_doc(), T0, [])
        everything = [Change.from_doc(d) for d in await all_records(records, "changes")]
        chosen = await changes_during(records, T0, T0 + DAY)
        titles = {c.title for c in chosen}
        assert titles == {
            "ends as the period begins",
            "overlaps the start",
            "inside",
            "planned before, ran into the period",
        }
        assert change_rows(chosen, T0, T0 + DAY) == change_rows(everything, T0, T0 + DAY)
        page = await records.changes_during(T0, T0 + DAY, limit=2)
        rest = await records.changes_during(T0, T0 + DAY, limit=10, cursor=page[-1][0])
        assert len(page) == 2 and len(rest) == 2 and page[-1][0] > rest[0][0]
    finally:
        await records.close()


async def test_the_span_follows_an_updated_change(backend):
    _, records = backend()
    await records.open()
    try:
        c = _change("postponed", T0 + HOUR, T0 + 2 * HOUR)
        c.id = await records.save("changes", 0, c.state.value, c.to_doc(), T0, [])
        assert [d["title"] for _, d in await records.changes_during(T0, T0 + DAY)] == ["postponed"]
        c.start, c.end = T0 + 3 * DAY, T0 + 3 * DAY + HOUR
        await records.save("changes", c.id, c.state.value, c.to_doc(), T0, [], version=1)
        assert await records.changes_during(T0, T0 + DAY) == []
    finally:
        await records.close()


async def test_changes_stored_before_the_span_columns_are_found(tmp_path, monkeypatch):
    path = tmp_path / "records.db"
    monkeypatch.setattr(records_sqlite, "MIGRATIONS", records_sqlite.MIGRATIONS[:1])
    old = SqliteRecordStore(path)
    await old.open()
    c = _change("stored by the previous version", T0 + HOUR, T0 + 2 * HOUR)
    await old.save("changes", 0, c.state.value, c.to_doc(), T0, [])
    await old.close()
    monkeypatch.undo()
    new = SqliteRecordStore(path)
    await new.open()
    try:
        assert len(await new.changes_during(T0, T0 + DAY)) == 1
        assert await new.changes_during(T0 + 2 * DAY, T0 + 3 * DAY) == []
    finally:
        await new.close()


async def test_incidents_of_a_period_are_bounded_by_the_store(make_world):
    w = await make_world()
    for n, t in enumerate((T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR)):
        await w.feed(t, event(t, host=f"sw{n}"))
    store = w.incidents.store
    page = await store.query(IncidentQuery(since=T0 + HOUR, until=T0 + 3 * HOUR))
    assert sorted(i.host for i in page.incidents) == ["sw1", "sw2"]
    assert [i.host for i in await incidents_in(store, T0 + HOUR, T0 + 3 * HOUR)] == ["sw1", "sw2"]
    assert [i.host for i in await incidents_in(store, T0, T0 + DAY)] == ["sw0", "sw1", "sw2", "sw3"]


async def test_the_assignment_group_is_chosen_by_the_store(make_world):
    w = await make_world()
    for n in range(4):
        inc = await w.incidents.create("admin", {"title": f"incident {n}", "host": f"h{n}"})
        if n % 2 == 0:
            await w.incidents.act(inc.id, "assign", "admin", {"group": "network"})
    page = await w.incidents.store.query(IncidentQuery(group="network", limit=1))
    assert [i.title for i in page.incidents] == ["incident 2"] and page.next_cursor is not None
    page = await w.incidents.store.query(IncidentQuery(group="network", cursor=page.next_cursor))
    assert [i.title for i in page.incidents] == ["incident 0"] and page.next_cursor is None
    assert (await w.incidents.store.query(IncidentQuery(group="storage"))).incidents == []
