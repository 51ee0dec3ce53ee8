"""Incident requests are plain data: built positionally or by name, equal by value, shown as a mapping."""

from __future__ import annotations

from correlator.responses import IncidentRequest, response_dict
from tests.unit.rules.helpers import ev as make_event


def test_an_incident_request_holds_its_fields_and_compares_by_value():
    ev = make_event("sw1", "linkDown")
    a = IncidentRequest("open", "r:sw1", ev, "r", "sw1 down", "", 2, 3, "noc", True)
    b = IncidentRequest(
        action="open",
        key="r:sw1",
        event=ev,
        rule="r",
        title="sw1 down",
        impact=2,
        urgency=3,
        assignment_group="noc",
        major=True,
    )
    assert a == b
    assert a != IncidentRequest("resolve", "r:sw1", ev, "r")
    d = response_dict(a)
    assert d == {
        "action": "open",
        "key": "r:sw1",
        "event": {"id": ev.id, "type": "linkDown", "host": "sw1"},
        "rule": "r",
        "title": "sw1 down",
        "description": "",
        "impact": 2,
        "urgency": 3,
        "assignment_group": "noc",
        "major": True,
        "kind": "IncidentRequest",
    }
    short = IncidentRequest("update", "k", ev, "r")
    assert (short.title, short.description, short.impact, short.urgency) == ("", "", None, None)
    assert (short.assignment_group, short.major) == (None, False)
