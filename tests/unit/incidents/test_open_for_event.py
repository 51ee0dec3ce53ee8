"""Opening an incident for an event in one step is opening it and linking the event, in two."""

from __future__ import annotations

import dataclasses
import inspect

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Severity
from correlator.incidents import lifecycle as lc
from correlator.incidents.model import Incident
from correlator.incidents.settings import IncidentSettings, parse_settings
from correlator.incidents.store import rows
from tests.unit.incidents.conftest import T0, event

POLICIES = [
    parse_settings({}),
    parse_settings({"major_priority": None, "timeline_limit": 1}),
    parse_settings(
        {
            "major_priority": "P2",
            "notify": {"ops": {"type": "webhook", "url": "http://127.0.0.1:9/x"}},
            "escalation": {p: [{"after": "5m", "notify": ["ops"]}] for p in ("P1", "P2", "P3", "P4", "P5")},
        }
    ),
]


def two_steps(s, changes, now, actor, ev, impact, urgency, major, fields):
    sev_i, sev_u = lc.SEVERITY_IMPACT_URGENCY[ev.severity]
    inc = lc.open_incident(
        s, changes, now, actor, impact=impact or sev_i, urgency=urgency or sev_u, major=major, **fields
    )
    lc.link_event(s, changes, inc, ev, actor, impact, urgency)
    return inc


def one_step(s, changes, now, actor, ev, impact, urgency, major, fields):
    return lc.open_for_event(s, changes, now, actor, ev, impact, urgency, major=major, **fields)


def outcome(opener, policy, notifying, severity, impact, urgency, major, lag):
    s = POLICIES[policy]
    changes = lc.Changes(notifying=notifying)
    ev = event(T0 + lag, severity=severity, message="m" * 600, resource="Gi0/1")
    fields = {"title": "t", "description": "d", "host": ev.host, "key": "k", "rule": "r"}
    inc = opener(s, changes, T0, "rule:r", ev, impact, urgency, major, fields)
    entries = [(e.at, e.actor, e.action, e.detail, e.incident is inc) for e in changes.entries]
    notices = [(kind, i is inc, extra) for kind, i, extra in changes.notices]
    doc, opened_by, new, dirty = inc.to_doc(), changes.opened_by, changes.new == [inc], bool(changes.dirty)
    inc.id = 7
    stored = rows(changes)  # the rows written: an entry's detail text given as made, or encoded then
    return doc, entries, notices, opened_by, new, dirty, stored.new, stored.log


@settings(max_examples=300, deadline=None)
@given(
    policy=st.integers(0, len(POLICIES) - 1),
    notifying=st.booleans(),
    severity=st.sampled_from(list(Severity)),
    # True and 1 are equal keys but not equal JSON: the opening's detail text must not mix them.
    impact=st.sampled_from([None, 1, 2, 3, True]),
    urgency=st.sampled_from([None, 1, 2, 3, True]),
    major=st.sampled_from([False, True, 0, 1]),
    lag=st.sampled_from([-30.0, 0.0, 30.0]),  # the event before, at or after the opening time
)
def test_one_step_opens_the_incident_that_open_and_link_do(
    policy, notifying, severity, impact, urgency, major, lag
):
    args = (policy, notifying, severity, impact, urgency, major, lag)
    assert outcome(one_step, *args) == outcome(two_steps, *args)


def test_both_ways_take_the_priority_from_the_settings(monkeypatch):
    # One place maps (impact, urgency) to a priority: the settings' `priority`.
    monkeypatch.setattr(IncidentSettings, "priority", lambda self, impact, urgency: f"P{impact + urgency}")
    for opener in (one_step, two_steps):
        doc = outcome(opener, 0, True, Severity.MINOR, 1, 3, False, 0.0)[0]
        assert doc["priority"] == "P4", opener


def test_its_named_fields_default_as_the_incident_does() -> None:
    """open_for_event names the Incident fields it takes (a storm would build a keyword dict per
    incident otherwise): each must exist on Incident with the same default, or an incident opened
    by a rule would differ from one opened by a person for the same fields."""
    fields = {f.name: f for f in dataclasses.fields(Incident)}
    params = inspect.signature(lc.open_for_event).parameters.values()
    named = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert named
    for p in named:
        assert p.name in fields, p.name
        if p.default is not inspect.Parameter.empty:
            assert fields[p.name].default == p.default, p.name
