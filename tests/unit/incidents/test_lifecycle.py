"""Given these incident requests at these (virtual) times, expect these incidents: SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from correlator.clock import Clock
from correlator.event import Severity
from correlator.incidents.model import IllegalTransition, Status
from correlator.incidents.stage import IncidentStage
from correlator.incidents.store import IncidentQuery
from correlator.pipeline import StageContext
from tests.unit.incidents.conftest import T0, request

MIN = 60.0
HOUR = 3600.0


async def feed(svc, clock: Clock, t: float, *requests) -> None:
    """One pipeline batch at time t carrying these requests (the clock is event time, as in replay)."""
    clock.advance_to(t)
    ctx = StageContext(clock, live=False, responses=list(requests))
    events = [r.event for r in requests] or []
    out = await IncidentStage(svc)(events, ctx)
    assert out == events
    if ctx.pending is not None:  # as the runner does before the ack
        await ctx.pending


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_request_opens_an_incident_with_priority_from_severity(make_service, clock):
    svc = await make_service()
    before = metric("correlator_incidents_opened_total", priority="P2")
    await feed(svc, clock, T0, request("open", T0, title="Gi0/1 down", description="link lost"))
    inc = svc.active_for("core-sw1/Gi0/1")
    assert inc is not None
    assert inc.human_id == "INC-000001"
    assert (inc.status, inc.impact, inc.urgency, inc.priority) == (Status.NEW, 1, 2, "P2")
    assert (inc.title, inc.description, inc.host, inc.rule) == (
        "Gi0/1 down",
        "link lost",
        "core-sw1",
        "link-down",
    )
    assert inc.event_count == 1 and inc.first_occurrence == inc.last_occurrence == T0
    assert inc.opened_at == T0 and not inc.major
    assert metric("correlator_incidents_opened_total", priority="P2") == before + 1
    assert metric("correlator_incidents_open", priority="P2") == 1
    _, timeline = await svc.get(inc.id)
    assert [e.action for e in timeline] == ["open", "event"]
    assert timeline[1].detail["host"] == "core-sw1" and timeline[1].actor == "rule:link-down"


async def test_repeats_are_deduplicated_into_the_open_incident_and_raise_priority(make_service, clock):
    svc = await make_service()
    await feed(svc, clock, T0, request("open", T0))
    await feed(
        svc, clock, T0 + 10, request("update", T0 + 10), request("open", T0 + 20, severity=Severity.MINOR)
    )
    inc = svc.active_for("core-sw1/Gi0/1")
    assert (inc.event_count, inc.last_occurrence, inc.priority) == (3, T0 + 20, "P2")
    await feed(svc, clock, T0 + 30, request("update", T0 + 30, severity=Severity.CRITICAL))
    assert (inc.id, inc.event_count, inc.priority, inc.major, inc.severity) == (1, 4, "P1", True, "critical")
    page = await svc.query(
        __import__("correlator.incidents.store", fromlist=["IncidentQuery"]).IncidentQuery()
    )
    assert [i.id for i in page.incidents] == [1]  # still one incident
    assert page.incidents[0].event_count == 4  # and it was saved
    _, timeline = await svc.get(1)
    assert [e.action for e in timeline].count("event") == 4
    assert any(e.action == "priority" and e.detail == {"from": "P2", "to": "P1"} for e in timeline)


async def test_clear_resolves_reopen_within_window_and_new_incident_after(make_service, clock):
    svc = await make_service({"reopen_window": "1h", "close_after": "1d"})
    await feed(svc, clock, T0, request("open", T0))
    await feed(svc, clock, T0 + 5 * MIN, request("resolve", T0 + 5 * MIN, description="link back up"))
    inc = (await svc.get(1))[0]
    assert inc.status is Status.RESOLVED and inc.resolved_at == T0 + 5 * MIN
    assert (inc.resolution_code, inc.resolution_notes) == ("auto_cleared", "link back up")
    assert metric("correlator_incidents_open", priority="P2") == 0

    # A clear with no open incident is ignored.
    await feed(svc, clock, T0 + 6 * MIN, request("resolve", T0 + 6 * MIN, key="other"))

    # The key fires again 30 minutes after the clear: the same incident comes back.
    await feed(svc, clock, T0 + 35 * MIN, request("open", T0 + 35 * MIN))
    inc = svc.active_for("core-sw1/Gi0/1")
    assert (inc.id, inc.status, inc.reopen_count, inc.event_count) == (1, Status.NEW, 1, 3)
    assert inc.resolved_at is None and inc.reopened_at == T0 + 35 * MIN

    # Resolved again, then the key fires 2 hours later: a new incident.
    await feed(svc, clock, T0 + 40 * MIN, request("resolve", T0 + 40 * MIN))
    await feed(svc, clock, T0 + 40 * MIN + 2 * HOUR, request("open", T0 + 40 * MIN + 2 * HOUR))
    new = svc.active_for("core-sw1/Gi0/1")
    assert new.id == 2 and new.status is Status.NEW
    old = (await svc.get(1))[0]
    assert old.status is Status.RESOLVED


async def test_resolved_incident_closes_after_close_after(make_service, clock):
    svc = await make_service({"close_after": "2h"})
    await feed(svc, clock, T0, request("open", T0))
    await feed(svc, clock, T0 + MIN, request("resolve", T0 + MIN))
    assert svc.next_due == T0 + MIN + 2 * HOUR
    await feed(svc, clock, T0 + 2 * HOUR, request("open", T0 + 2 * HOUR, key="unrelated"))
    assert (await svc.get(1))[0].status is Status.RESOLVED
    await feed(svc, clock, T0 + 3 * HOUR, request("open", T0 + 3 * HOUR, key="unrelated"))
    inc, timeline = await svc.get(1)
    assert inc.status is Status.CLOSED and inc.closed_at == T0 + MIN + 2 * HOUR
    assert timeline[-1].action == "close" and timeline[-1].actor == "system"
    # Closed is final: the key opens a new incident even inside the reopen window.
    await feed(svc, clock, T0 + 3 * HOUR + 1, request("open", T0 + 3 * HOUR + 1))
    assert svc.active_for("core-sw1/Gi0/1").id == 3


ESCALATION = {
    "escalation": {
        "P1": [
            {"after": "5m"},
            {"after": "15m", "level": 2},
            {"after": "1h", "level": 3, "until": "resolved"},
        ]
    }
}


async def test_p1_not_acknowledged_escalates_until_acknowledged(make_service, clock):
    svc = await make_service(ESCALATION)
    l1 = metric("correlator_incident_escalations_total", level="1")
    await feed(svc, clock, T0, request("open", T0, severity=Severity.CRITICAL))
    inc = svc.active_for("core-sw1/Gi0/1")
    assert inc.priority == "P1" and inc.major and inc.next_escalation_at == T0 + 5 * MIN
    clock.advance_to(T0 + 4 * MIN)
    assert await svc.run_due() == 0 and inc.escalation_level == 0
    clock.advance_to(T0 + 5 * MIN)
    assert await svc.run_due() == 1
    assert inc.escalation_level == 1 and inc.next_escalation_at == T0 + 15 * MIN
    assert metric("correlator_incident_escalations_total", level="1") == l1 + 1
    await svc.act(inc.id, "ack", "alice", {})
    assert inc.status is Status.ACKNOWLEDGED and inc.acknowledged_at == T0 + 5 * MIN
    # Level 2 waited for acknowledgement, which came; level 3 waits for resolution.
    assert inc.next_escalation_at == T0 + HOUR
    clock.advance_to(T0 + 2 * HOUR)
    await svc.run_due()
    assert inc.escalation_level == 3
    _, timeline = await svc.get(inc.id)
    assert [e.detail["level"] for e in timeline if e.action == "escalate"] == [1, 3]


async def test_escalation_deadline_survives_a_restart(store_factory, clock, make_service):
    svc = await make_service(ESCALATION)
    await feed(svc, clock, T0, request("open", T0, severity=Severity.CRITICAL))
    await svc.close()
    # Down for 20 minutes: on start the overdue steps are found from the stored incident.
    clock.advance_to(T0 + 20 * MIN)
    svc2 = await make_service(ESCALATION)
    assert svc2.next_due == T0 + 5 * MIN
    assert await svc2.run_due() == 1
    inc = svc2.active_for("core-sw1/Gi0/1")
    assert inc.escalation_level == 2 and inc.next_escalation_at == T0 + HOUR
    # The restarted service still de-duplicates into the stored incident.
    await feed(svc2, clock, T0 + 21 * MIN, request("update", T0 + 21 * MIN))
    assert svc2.active_for("core-sw1/Gi0/1").event_count == 2


async def test_manual_state_machine_and_audit(make_service, clock):
    svc = await make_service()
    inc = await svc.create(
        "admin-bob", {"title": "UPS on battery", "impact": 2, "urgency": 1, "host": "dc1-ups"}
    )
    assert (inc.human_id, inc.priority, inc.status) == ("INC-000001", "P2", Status.NEW)
    clock.advance_to(T0 + 60)
    await svc.act(inc.id, "assign", "alice", {"group": "facilities", "assignee": "carol"})
    await svc.act(inc.id, "status", "carol", {"status": "in_progress"})
    assert inc.acknowledged_at == T0 + 60  # starting work acknowledges it
    await svc.act(inc.id, "comment", "carol", {"text": "generator started"})
    with pytest.raises(IllegalTransition, match="INC-000001 is in_progress: cannot ack"):
        await svc.act(inc.id, "ack", "alice", {})
    with pytest.raises(IllegalTransition):
        await svc.act(inc.id, "close", "alice", {})
    await svc.act(inc.id, "resolve", "carol", {"code": "workaround", "notes": "on generator"})
    await svc.act(inc.id, "reopen", "bob", {"reason": "mains failed again"})
    assert inc.status is Status.NEW and inc.resolution_code == ""
    await svc.act(inc.id, "resolve", "carol", {"code": "fixed"})
    await svc.act(inc.id, "close", "bob", {"note": "confirmed"})
    with pytest.raises(IllegalTransition, match="closed: cannot reopen"):
        await svc.act(inc.id, "reopen", "bob", {})
    await svc.act(inc.id, "comment", "bob", {"text": "post-mortem done"})  # comments stay allowed
    inc, timeline = await svc.get(inc.id)
    assert inc.status is Status.CLOSED
    audit = [(e.actor, e.action, e.detail.get("to")) for e in timeline]
    assert audit == [
        ("admin-bob", "open", None),
        ("alice", "assign", {"group": "facilities", "assignee": "carol"}),
        ("carol", "status", "in_progress"),
        ("carol", "comment", None),
        ("carol", "resolve", "resolved"),
        ("bob", "reopen", "new"),
        ("carol", "resolve", "resolved"),
        ("bob", "close", "closed"),
        ("bob", "comment", None),
    ]
    assert all(e.at >= T0 for e in timeline)


async def test_update_requests_never_reopen(make_service, clock):
    svc = await make_service({"reopen_window": "1h"})
    # An update with no incident for its key opens one: losing an incident is worse than opening one.
    await feed(svc, clock, T0, request("update", T0))
    assert svc.active_for("core-sw1/Gi0/1").id == 1
    await feed(svc, clock, T0 + MIN, request("resolve", T0 + MIN))
    # A trailing update inside the window is kept on the resolved incident, which stays resolved.
    await feed(svc, clock, T0 + 2 * MIN, request("update", T0 + 2 * MIN))
    inc = (await svc.get(1))[0]
    assert (inc.status, inc.event_count) == (Status.RESOLVED, 3)
    # After the window, an update starts a new incident.
    await feed(svc, clock, T0 + 2 * HOUR, request("update", T0 + 2 * HOUR))
    assert svc.active_for("core-sw1/Gi0/1").id == 2


async def test_timeline_keeps_at_most_timeline_limit_events_but_counts_all(make_service, clock):
    svc = await make_service({"timeline_limit": 3})
    await feed(svc, clock, T0, *[request("update", T0 + i, rule="storm") for i in range(10)])
    inc, timeline = await svc.get(1)
    assert (inc.event_count, inc.linked_events, inc.last_occurrence) == (10, 3, T0 + 9)
    assert [e.action for e in timeline].count("event") == 3


async def test_out_of_range_levels_from_a_rule_fall_back_to_severity(make_service, clock):
    svc = await make_service()
    await feed(svc, clock, T0, request("open", T0, impact=0, urgency=7, severity=Severity.MINOR))
    inc = svc.active_for("core-sw1/Gi0/1")
    assert (inc.impact, inc.urgency, inc.priority) == (2, 2, "P3")


async def test_a_storm_batch_is_stored_as_opened_and_read_back_after_a_restart(make_service, clock):
    """Many distinct keys in one batch (an alert storm): ids in order, each incident's stored
    document equal to the one in memory, its timeline `open` then `event`, listed newest first."""
    svc = await make_service()
    sev = [Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.WARNING, Severity.INFO]
    reqs = [
        request("open", T0 + i, key=f"alert:{i:04x}", host=f"h{i}", severity=sev[i % 5]) for i in range(40)
    ]
    await feed(svc, clock, T0 + 40, *reqs)
    before = {i: svc.active_for(f"alert:{i:04x}").to_doc() for i in range(40)}
    assert [d["id"] for d in before.values()] == list(range(1, 41))
    await svc.close()
    svc2 = await make_service()
    for i, doc in before.items():
        inc, timeline = await svc2.get(doc["id"])
        assert inc.to_doc() == doc and svc2.active_for(f"alert:{i:04x}").to_doc() == doc
        assert [(e.action, e.actor, e.at) for e in timeline] == [
            ("open", "rule:link-down", T0 + i),  # replay: each acts at its event's time
            ("event", "rule:link-down", T0 + i),
        ]
        assert timeline[0].detail == {
            "priority": doc["priority"], "impact": doc["impact"], "urgency": doc["urgency"], "major": doc["major"]
        }  # fmt: skip
        assert timeline[1].detail["host"] == f"h{i}" and timeline[1].detail["severity"] == doc["severity"]
    page = await svc2.query(IncidentQuery(limit=10))
    assert [i.id for i in page.incidents] == list(range(40, 30, -1)) and page.next_cursor == 31
    page = await svc2.query(IncidentQuery(priorities=("P1",), limit=100))
    assert sorted(i.id for i in page.incidents) == [d["id"] for d in before.values() if d["priority"] == "P1"]
