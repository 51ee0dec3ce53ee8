"""Reloading the calendar file: a valid one is swapped in, a broken one keeps the last good one with
its file:line, and occurrences of removed or changed windows that have not started are withdrawn.

Virtual clock (Friday T0 08:00 UTC), SQLite and PostgreSQL, as in test_change_scenarios.py.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from correlator.changes.model import State
from correlator.changes.reload import CalendarReloader
from tests.unit.itsm.conftest import HOUR, MIN, T0, event

SUNDAY_2AM = T0 + 2 * 86400 - 6 * HOUR
SATURDAY_2AM = SUNDAY_2AM - 86400


def window(name: str, days: str, cis: str, start: str = "02:00", end: str = "04:00") -> str:
    return f"  - {{name: {name}, days: {days}, start: '{start}', end: '{end}', cis: [{cis}]}}\n"


SUNDAY = window("sunday", "[sun]", "par-core1")
SATURDAY = window("saturday", "[sat]", "lyo-core1")


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def world_with_file(make_world, tmp_path: Path, text: str):
    """A world serving `text`, and a reloader of the file that holds it."""
    path = tmp_path / "calendar.yaml"
    path.write_text(text)
    w = await make_world(text)
    return w, path, CalendarReloader(w.changes, path)


async def calendar_changes(w) -> dict[str, object]:
    return {c.calendar: c for c in await w.changes.query((), 100, None) if c.calendar}


async def test_a_valid_calendar_is_swapped_in_and_its_new_windows_create_occurrences_at_once(
    make_world, tmp_path
):
    w, path, reloader = await world_with_file(make_world, tmp_path, "windows:\n" + SUNDAY)
    w.clock.advance_to(SATURDAY_2AM - 12 * HOUR)
    path.write_text("windows:\n" + SUNDAY + SATURDAY)
    result = await reloader.reload("SIGHUP")
    assert result.ok and result.windows == 2 and result.withdrawn == [] and result.errors == []
    [c] = (await calendar_changes(w)).values()  # Saturday's is within the horizon; Sunday's not yet
    assert (c.calendar, c.state, c.cis) == (f"saturday@{SATURDAY_2AM:.0f}", State.APPROVED, ["lyo-core1"])
    ev = event(SATURDAY_2AM + MIN, host="lyo-core1")
    await w.feed(SATURDAY_2AM + MIN, ev)
    assert ev.attributes["change_id"] == c.human_id  # the new window covers events
    assert result.as_dict()["file"] == str(path) and reloader.last is result


async def test_a_broken_calendar_keeps_the_last_good_one_and_names_file_and_line(make_world, tmp_path):
    w, path, reloader = await world_with_file(make_world, tmp_path, "windows:\n" + SUNDAY)
    before = w.changes.settings.calendar
    failures = metric("correlator_calendar_reload_failures_total")
    path.write_text(
        "windows:\n  - name: w\n    days: [sunday, funday]\n    start: '02:00'\n    end: '04:00'\n    cis: [a]\n"
    )
    result = await reloader.reload("file change")
    assert not result.ok and result.windows == 1
    [err] = result.errors
    assert str(err).startswith(f"{path}:3:11: unknown day 'funday'")
    assert err.as_dict() | {"message": ""} == {
        "file": str(path), "line": 3, "column": 11, "message": "", "text": str(err),
    }  # fmt: skip
    assert w.changes.settings.calendar is before  # the last good calendar keeps serving
    assert metric("correlator_calendar_reload_failures_total") == failures + 1
    assert metric("correlator_calendar_reload_failed") == 1
    await w.feed(SUNDAY_2AM - HOUR)
    assert list(await calendar_changes(w)) == [f"sunday@{SUNDAY_2AM:.0f}"]  # still created from it

    path.write_text("windows: [\n")  # a YAML syntax error has a position too
    result = await reloader.reload("api")
    assert not result.ok and str(result.errors[0]).startswith(f"{path}:2:1: YAML syntax error")
    path.write_text("")  # caught between an editor's truncate and write: not "no windows"
    result = await reloader.reload("file change")
    assert not result.ok and str(result.errors[0]).startswith(f"{path}:1:1: the calendar file is empty")
    assert list(await calendar_changes(w)) == [f"sunday@{SUNDAY_2AM:.0f}"]  # nothing withdrawn
    path.unlink()
    result = await reloader.reload("api")
    assert not result.ok and result.errors[0].as_dict()["line"] is None
    assert "no such calendar file" in str(result.errors[0])

    path.write_text("windows:\n" + SUNDAY)
    assert (await reloader.reload("api")).ok and metric("correlator_calendar_reload_failed") == 0


async def test_a_removed_window_withdraws_its_occurrence_not_yet_started(make_world, tmp_path):
    w, path, reloader = await world_with_file(make_world, tmp_path, "windows:\n" + SUNDAY + SATURDAY)
    await w.feed(SATURDAY_2AM + HOUR)  # Saturday's in progress, Sunday's approved and ahead
    occurrences = await calendar_changes(w)
    saturday, sunday = occurrences[f"saturday@{SATURDAY_2AM:.0f}"], occurrences[f"sunday@{SUNDAY_2AM:.0f}"]
    assert (saturday.state, sunday.state) == (State.IN_PROGRESS, State.APPROVED)

    path.write_text("windows: []\n")
    result = await reloader.reload("SIGHUP")
    assert result.ok and result.windows == 0 and result.withdrawn == [sunday.human_id]
    sunday, log = await w.changes.get(sunday.id)
    assert sunday.state is State.CANCELLED and sunday.withdrawn
    assert (log[-1].actor, log[-1].detail) == (
        "calendar",
        {"from": "approved", "to": "cancelled", "note": "calendar reload (SIGHUP): window sunday removed"},
    )
    ev = event(SUNDAY_2AM + MIN, host="par-core1")
    await w.feed(SUNDAY_2AM + MIN, ev)
    assert ev.attributes == {}  # the withdrawn window covers nothing any more

    saturday, _ = await w.changes.get(saturday.id)  # the one in progress ran to its end
    assert (saturday.state, saturday.finished_at) == (State.COMPLETED, SATURDAY_2AM + 2 * HOUR)
    assert len(await calendar_changes(w)) == 2  # and no new occurrence of either window


async def test_a_changed_window_replaces_its_occurrence_and_a_revert_brings_the_old_one_back(
    make_world, tmp_path
):
    w, path, reloader = await world_with_file(make_world, tmp_path, "windows:\n" + SUNDAY)
    await w.feed(SUNDAY_2AM - 12 * HOUR)
    [first] = (await calendar_changes(w)).values()

    path.write_text("windows:\n" + window("sunday", "[sun]", "par-core2"))  # same times, another CI
    result = await reloader.reload("api")
    assert result.withdrawn == [first.human_id]
    _, log = await w.changes.get(first.id)
    assert log[-1].detail["note"] == "calendar reload (api): window sunday changed"
    live = [c for c in await w.changes.query(("approved",), 10, None)]
    assert [(c.calendar, c.cis) for c in live] == [(f"sunday@{SUNDAY_2AM:.0f}", ["par-core2"])]

    path.write_text("windows:\n" + window("sunday", "[sun]", "par-core2", start="03:00"))  # other times
    result = await reloader.reload("api")
    assert result.withdrawn == [live[0].human_id]
    [moved] = await w.changes.query(("approved",), 10, None)
    assert moved.start == SUNDAY_2AM + HOUR

    path.write_text("windows:\n" + SUNDAY)  # back to the first version: its occurrence is created again
    assert (await reloader.reload("api")).withdrawn == [moved.human_id]
    [back] = await w.changes.query(("approved",), 10, None)
    assert (back.calendar, back.cis, back.id != first.id) == (first.calendar, ["par-core1"], True)

    assert (await reloader.reload("api")).withdrawn == []  # an unchanged file changes nothing
    assert [c.id for c in await w.changes.query(("approved",), 10, None)] == [back.id]


async def test_an_occurrence_cancelled_by_a_person_stays_cancelled(make_world, tmp_path):
    w, path, reloader = await world_with_file(make_world, tmp_path, "windows:\n" + SUNDAY)
    await w.feed(SUNDAY_2AM - 12 * HOUR)
    [c] = (await calendar_changes(w)).values()
    await w.changes.act(c.id, "cancel", "alice", "no work this week")
    path.write_text("windows:\n" + window("sunday", "[sun]", "par-core1, par-core2"))
    assert (await reloader.reload("api")).withdrawn == []
    await w.feed(SUNDAY_2AM - HOUR)
    assert await w.changes.query(("approved",), 10, None) == []


async def test_the_dependency_map_follows_the_reloaded_calendar(make_world, tmp_path):
    text = "dependencies:\n  core-sw1: [app1]\nwindows:\n" + SUNDAY
    w, path, reloader = await world_with_file(make_world, tmp_path, text)
    await w.changes.create("a", {"title": "t", "start": T0, "end": T0 + HOUR, "cis": ["core-sw1"]})
    await w.changes.act(1, "approve", "b")
    path.write_text("dependencies:\n  core-sw1: [app2]\nwindows:\n" + SUNDAY)
    assert (await reloader.reload("api")).ok
    app1, app2 = event(T0 + MIN, host="app1"), event(T0 + MIN, host="app2")
    await w.feed(T0 + MIN, app1, app2)
    assert (app1.attributes, app2.attributes["maintenance"]) == ({}, "tag")


async def test_windows_edited_while_stopped_are_withdrawn_at_start(make_world, tmp_path):
    w = await make_world("windows:\n" + SUNDAY + SATURDAY)
    await w.feed(SATURDAY_2AM - 12 * HOUR)
    [saturday] = (await calendar_changes(w)).values()
    w2 = await make_world("windows:\n" + SUNDAY, clock=w.clock)  # restarted on the same store
    saturday, log = await w2.changes.get(saturday.id)
    assert saturday.state is State.CANCELLED and saturday.withdrawn
    assert log[-1].detail["note"] == "calendar reload (start): window saturday removed"


async def test_processes_sharing_the_store_write_each_occurrence_once_through_the_calendar_writer(
    make_world, tmp_path
):
    """The cluster: every worker serves the calendar, only the timer leader writes its records; the
    leadership moving on does not create an occurrence twice, and the new writer starts it."""
    writer = {"name": "a"}
    a = await make_world("windows:\n" + SATURDAY)
    b = await make_world("windows:\n" + SATURDAY)
    a.changes.share_calendar(lambda: writer["name"] == "a")
    b.changes.share_calendar(lambda: writer["name"] == "b")
    for w in (a, b):
        w.clock.advance_to(SATURDAY_2AM - 12 * HOUR)
    for w in (a, b):  # the maintenance stage and the timers call this in every process
        await w.changes.run_due(w.clock.now())
    [stored] = [c for c in await a.changes.query((), 100, None) if c.calendar]  # one record, not two
    assert stored.calendar == f"saturday@{SATURDAY_2AM:.0f}"
    writer["name"] = "b"  # a stalled: b owns partition 0 now, before the change feed reached it
    for w in (a, b):
        w.clock.advance_to(SATURDAY_2AM + MIN)
        await w.changes.run_due(w.clock.now())
    [c] = [c for c in await b.changes.query((), 100, None) if c.calendar]
    assert c.state is State.IN_PROGRESS and c.id == stored.id


async def test_a_stored_change_this_process_cannot_read_is_skipped_and_counted_by_a_sync(make_world):
    """Written by another version or by hand: the start and the sync after a reconnect read on."""
    a = await make_world()
    good = await a.changes.create(
        "alice", {"title": "swap", "start": T0 + HOUR, "end": T0 + 2 * HOUR, "cis": ["r1"]}
    )
    await a.records.save("changes", 0, "approved", {"id": 0, "state": "bogus"}, T0, [])
    before = metric("correlator_change_records_unreadable_total")
    b = await make_world()
    await b.changes.sync()
    assert metric("correlator_change_records_unreadable_total") == before + 2  # at start, at the sync
    assert [c.id for c in await b.changes.query((), 100, None) if c.title == "swap"] == [good.id]
    assert good.id in b.changes._live
