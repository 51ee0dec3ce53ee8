"""Given change windows and events at these virtual times, expect tagging, suppression and linkage.

Every test runs on SQLite and on PostgreSQL (skipped with a message where none answers).
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from correlator.changes.model import IllegalTransition, State
from correlator.event import Severity
from tests.unit.itsm.conftest import HOUR, MIN, T0, event

CALENDAR = """
dependencies:
  core-sw1: [app1]
  app1: [web1]
windows:
  - name: paris-sunday
    title: Weekly maintenance, Paris
    days: [sun]
    start: "02:00"
    end: "04:00"
    cis: [par-core1]
"""


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def approved_change(w, start: float, end: float, **fields):
    c = await w.changes.create(
        "alice", {"title": "IOS upgrade", "start": start, "end": end, "cis": ["core-sw1"], **fields}
    )
    return await w.changes.act(c.id, "approve", "bob")


async def test_events_in_the_window_on_its_ci_are_tagged_suppressed_and_still_stored(make_world):
    w = await make_world(CALENDAR)
    c = await approved_change(w, T0 + HOUR, T0 + 3 * HOUR)
    suppressed = metric("correlator_maintenance_events_total", action="suppressed")
    inside = event(T0 + 2 * HOUR)
    other_host = event(T0 + 2 * HOUR, host="edge-7")
    out = await w.feed(T0 + 2 * HOUR, inside, other_host)
    assert {e.id for e in out} == {inside.id, other_host.id}  # both reach the event store
    assert inside.attributes == {"change_id": c.human_id, "maintenance": "suppress"}
    assert other_host.attributes == {}  # out of scope: untouched
    assert [e.id for e in w.correlation.seen] == [other_host.id]  # the suppressed one is not correlated
    assert w.incidents.active_for("core-sw1/linkDown") is None
    assert w.incidents.active_for("edge-7/linkDown") is not None
    assert metric("correlator_maintenance_events_total", action="suppressed") == suppressed + 1


async def test_events_before_and_after_the_window_or_of_a_requested_change_are_untouched(make_world):
    w = await make_world()
    await approved_change(w, T0 + HOUR, T0 + 2 * HOUR)
    await w.changes.create(
        "alice", {"title": "not approved", "start": T0, "end": T0 + 9 * HOUR, "cis": ["core-sw9"]}
    )
    before, after, requested = (
        event(T0 + 30 * MIN),
        event(T0 + 2 * HOUR, type_="bgpDown"),
        event(T0 + HOUR, host="core-sw9"),
    )
    await w.feed(T0 + 30 * MIN, before)
    await w.feed(T0 + HOUR, requested)
    await w.feed(T0 + 2 * HOUR, after)  # the window is [start, end)
    assert [e.attributes for e in (before, after, requested)] == [{}, {}, {}]
    assert len(w.correlation.seen) == 3


async def test_dependent_cis_follow_the_dependents_policy(make_world):
    w = await make_world(CALENDAR)
    first = await approved_change(w, T0, T0 + HOUR)  # default: suppress own CIs, tag dependents
    app, web = event(T0 + MIN, host="app1"), event(T0 + MIN, host="web1")  # web1 -> app1 -> core-sw1
    await w.feed(T0 + MIN, app, web)
    assert app.attributes["maintenance"] == web.attributes["maintenance"] == "tag"
    assert {e.host for e in w.correlation.seen} == {"app1", "web1"}  # tagged, still correlated

    await w.changes.act(first.id, "cancel", "b")
    c = await w.changes.create(
        "a",
        {"title": "t", "start": T0, "end": T0 + HOUR, "cis": ["core-sw1"], "dependents_policy": "suppress"},
    )
    await w.changes.act(c.id, "approve", "b")
    w.correlation.seen.clear()
    await w.feed(T0 + 2 * MIN, event(T0 + 2 * MIN, host="app1", type_="cpuHigh"))
    assert w.correlation.seen == []


async def test_downgrade_lowers_the_severity(make_world):
    w = await make_world(changes={"downgrade_to": Severity.WARNING})
    await approved_change(w, T0, T0 + HOUR, services=["payments"], policy="downgrade")
    crit = event(T0 + MIN, host="db9", severity=Severity.CRITICAL, attributes={"service": "payments"})
    await w.feed(T0 + MIN, crit)
    assert crit.severity is Severity.WARNING
    assert crit.attributes["original_severity"] == "critical"


async def test_clears_in_the_window_are_tagged_but_never_suppressed(make_world):
    w2 = await make_world()
    await approved_change(w2, T0 + HOUR, T0 + 2 * HOUR)
    await w2.feed(T0, event(T0))  # opens before the window
    clear = event(T0 + HOUR + MIN, severity=Severity.CLEAR)
    await w2.feed(T0 + HOUR + MIN, clear)  # inside the window: tagged but passed on, resolves
    assert clear.attributes["change_id"] == "CHG-000001"
    inc, _ = await w2.incidents.get(1)
    assert inc.status.value == "resolved"


async def test_calendar_occurrence_becomes_an_approved_change_that_starts_and_finishes_itself(make_world):
    w = await make_world(CALENDAR)
    sunday_2am = T0 + 2 * 86400 - 6 * HOUR  # Friday 08:00 -> Sunday 02:00 UTC
    await w.feed(sunday_2am - 12 * HOUR)  # within the 1 day horizon: the record exists, approved
    [c] = await w.changes.query((), 10, None)
    assert (c.state, c.start, c.end, c.cis, c.calendar) == (
        State.APPROVED,
        sunday_2am,
        sunday_2am + 2 * HOUR,
        ["par-core1"],
        f"paris-sunday@{sunday_2am:.0f}",
    )
    ev = event(sunday_2am + 30 * MIN, host="par-core1")
    await w.feed(sunday_2am + 30 * MIN, ev)
    assert ev.attributes["change_id"] == c.human_id and w.correlation.seen == []
    await w.feed(sunday_2am + 2 * HOUR + MIN)
    c, log = await w.changes.get(c.id)
    assert c.state is State.COMPLETED and (c.started_at, c.finished_at) == (sunday_2am, sunday_2am + 2 * HOUR)
    assert [e.type for e in w.emitted] == ["change.started", "change.completed"]
    assert all(e.source == "changes" and e.attributes["change_id"] == c.human_id for e in w.emitted)
    assert [e.actor for e in log] == ["calendar"] * 3
    await w.feed(sunday_2am + 3 * HOUR)  # no duplicate occurrence
    assert len(await w.changes.query((), 10, None)) == 1


async def test_incident_after_a_change_upstream_is_linked_and_the_change_can_then_fail(make_world):
    w = await make_world(CALENDAR, changes={"suspect_window": 2 * HOUR})
    c = await approved_change(w, T0, T0 + HOUR)
    await w.changes.act(c.id, "start", "bob")
    w.clock.advance_to(T0 + HOUR)
    await w.changes.act(c.id, "complete", "bob")
    induced = metric("correlator_change_induced_incidents_total")
    await w.feed(T0 + 90 * MIN, event(T0 + 90 * MIN, host="app1"))  # app1 depends on core-sw1
    await w.feed(T0 + 4 * HOUR, event(T0 + 4 * HOUR, host="web1", type_="httpDown"))  # too late
    linked = w.incidents.active_for("app1/linkDown")
    late = w.incidents.active_for("web1/httpDown")
    assert linked.change_id == c.human_id and late.change_id is None
    c, _ = await w.changes.get(c.id)
    assert c.incidents == [linked.id]
    assert metric("correlator_change_induced_incidents_total") == induced + 1
    failed = metric("correlator_change_outcomes_total", outcome="failed")
    c = await w.changes.act(c.id, "fail", "bob", "caused INC-000001")
    assert c.state is State.FAILED and [e.type for e in w.emitted][-1] == "change.failed"
    assert w.emitted[-1].severity is Severity.WARNING
    assert metric("correlator_change_outcomes_total", outcome="failed") == failed + 1


async def test_state_machine_is_enforced_and_survives_a_restart(make_world, backend):
    w = await make_world()
    c = await w.changes.create("a", {"title": "t", "start": T0, "end": T0 + HOUR, "cis": ["x"]})
    with pytest.raises(IllegalTransition, match="requested: cannot go to in_progress"):
        await w.changes.act(c.id, "start", "a")
    await w.changes.act(c.id, "approve", "a")
    await w.changes.act(c.id, "start", "a")
    await w.changes.act(c.id, "complete", "a")
    with pytest.raises(IllegalTransition, match="no linked incident"):
        await w.changes.act(c.id, "fail", "a")
    with pytest.raises(IllegalTransition, match="final"):
        await w.changes.act(
            (
                await w.changes.act(
                    (await w.changes.create("a", {"title": "u", "start": T0, "end": T0 + 1, "cis": []})).id,
                    "cancel",
                    "a",
                )
            ).id,
            "approve",
            "a",
        )
    w2 = await make_world(clock=w.clock)
    c2, log = await w2.changes.get(c.id)
    assert c2.state is State.COMPLETED and [e.action for e in log] == ["create", "state", "state", "state"]
    assert [e.detail.get("to") for e in log[1:]] == ["approved", "in_progress", "completed"]


async def test_a_change_event_cancelled_before_it_is_queued_is_counted_lost(make_world):
    """The change is saved; its event, whose caller was cancelled (the daemon stopping) while the
    queue had not taken it yet, is counted lost like one the queue refused."""
    w = await make_world()
    c = await approved_change(w, T0 + HOUR, T0 + 2 * HOUR)
    emitting = asyncio.Event()

    async def never_queued(events, source):
        emitting.set()
        await asyncio.Event().wait()  # JetStream's ack not back yet

    w.changes.emit = never_queued
    lost = metric("correlator_change_events_total", result="lost")
    starting = asyncio.create_task(w.changes.act(c.id, "start", "carol"))
    await asyncio.wait_for(emitting.wait(), 5)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert metric("correlator_change_events_total", result="lost") == lost + 1
    assert (await w.changes.get(c.id))[0].state is State.IN_PROGRESS
