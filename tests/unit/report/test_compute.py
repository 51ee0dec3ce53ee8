"""The report's figures from given records: weeks, MTTA/MTTR, escalations, links to problems,
known errors and changes, noise, and availability over exactly the period with maintenance."""

from __future__ import annotations

import pytest

from correlator.availability.model import parse_services
from correlator.availability.settings import parse_settings
from correlator.changes.model import Change, State
from correlator.incidents.model import Incident, Status
from correlator.report.compute import (
    AvailabilityInput,
    availability,
    change_figures,
    incident_figures,
    noise,
    recurring,
    week_starts,
)
from correlator.yamlfile import loads

MON = 1_796_083_200.0 - 86400.0  # 2026-11-30T00:00:00Z, a Monday
DAY, H = 86400.0, 3600.0


def inc(n: int, at: float, **kw: object) -> Incident:
    return Incident(title=f"i{n}", opened_at=at, id=n, **kw)  # type: ignore[arg-type]


def test_weeks_are_iso_weeks_overlapping_the_period() -> None:
    assert week_starts(MON + 2 * DAY, MON + 9 * DAY) == [MON, MON + 7 * DAY]
    assert week_starts(MON, MON + 7 * DAY) == [MON]  # the end is exclusive


def test_incidents_by_week_priority_and_the_means_over_those_that_have_them() -> None:
    incidents = [
        inc(1, MON + H, priority="P1", acknowledged_at=MON + H + 60, resolved_at=MON + 2 * H, major=True),
        inc(2, MON + 2 * H, priority="P3", acknowledged_at=MON + 2 * H + 180, escalation_level=2),
        inc(3, MON + 8 * DAY, priority="P3", status=Status.RESOLVED, resolved_at=MON + 8 * DAY + 600),
        inc(4, MON + 8 * DAY, priority="P5", reopen_count=1, escalation_level=1),
    ]
    f = incident_figures(incidents, MON, MON + 14 * DAY)
    assert f["total"] == 4 and f["by_priority"] == {"P1": 1, "P2": 0, "P3": 2, "P4": 0, "P5": 1}
    assert f["by_status"] == {"new": 3, "resolved": 1} and f["major"] == 1 and f["reopened"] == 1
    assert f["mtta_seconds"] == 120.0  # (60 + 180) / 2: only the acknowledged ones
    assert f["mttr_seconds"] == (H + 600) / 2
    assert f["escalated"] == 2 and f["escalations_by_level"] == {"1": 1, "2": 1}
    w1, w2 = f["by_week"]
    assert (w1["week"], w1["total"], w1["mtta_seconds"], w1["mttr_seconds"]) == ("2026-W49", 2, 120.0, H)
    assert (w2["week"], w2["total"], w2["mtta_seconds"], w2["escalated"]) == ("2026-W50", 2, None, 1)
    empty = incident_figures([], MON, MON + DAY)
    assert empty["total"] == 0 and empty["mtta_seconds"] is None and len(empty["by_week"]) == 1


def test_problems_known_errors_and_signatures_of_the_period() -> None:
    incidents = [
        inc(1, MON, problem_id="PRB-000002", known_error_id="KE-000001"),
        inc(2, MON, known_error_id="KE-000001"),
        inc(3, MON, problem_id="PRB-000002"),
    ]
    problems = [
        {"id": 2, "title": "disk", "state": "known_error", "opened_at": MON, "incidents": [1, 3, 99]},
        {"id": 1, "title": "older", "state": "resolved", "opened_at": MON - 30 * DAY, "incidents": [50]},
    ]
    occurrences = [("k|r|h", 1, MON), ("k|r|h", 2, MON + 1), ("x|y|z", 3, MON + 2)]
    r = recurring(incidents, occurrences, problems, [{"id": 1, "title": "reboot it"}], MON, MON + DAY)
    assert r["signatures"] == [
        {"key": "k", "rule": "r", "host": "h", "count": 2},
        {"key": "x", "rule": "y", "host": "z", "count": 1},
    ]
    assert r["problems"] == [{"id": "PRB-000002", "title": "disk", "state": "known_error", "incidents": 2}]
    assert r["problems_opened"] == 1
    assert r["known_errors"] == [{"id": "KE-000001", "title": "reboot it", "incidents": 2}]
    assert r["incidents_with_known_error"] == 2


def test_changes_overlapping_the_period_by_outcome_and_the_incidents_they_caused() -> None:
    changes = [
        Change("a", MON - H, MON + H, state=State.COMPLETED, id=1),
        Change("b", MON + DAY, MON + DAY + H, state=State.FAILED, id=2),
        Change("c", MON - 2 * DAY, MON - DAY, state=State.COMPLETED, id=3),  # before the period
        Change("d", MON + 2 * DAY, MON + 3 * DAY, state=State.CANCELLED, id=4),
    ]
    incidents = [inc(1, MON, change_id="CHG-000002"), inc(2, MON, change_id="CHG-000002"), inc(3, MON)]
    c = change_figures(changes, incidents, MON, MON + 7 * DAY)
    assert c["total"] == 3 and c["by_outcome"] == {"cancelled": 1, "completed": 1, "failed": 1}
    assert c["caused_incidents"] == 2 and c["causing_changes"] == 1
    assert [(x["id"], x["incidents"]) for x in c["list"]] == [
        ("CHG-000001", 0),
        ("CHG-000002", 2),
        ("CHG-000004", 0),
    ]


def test_noise_cis_from_the_event_store_rules_by_incidents() -> None:
    incidents = [
        inc(1, MON, host="sw1", rule="flap", event_count=10),
        inc(2, MON, host="sw1", rule="flap", event_count=5),
        inc(3, MON, host="sw2", rule="down", event_count=40),
    ]
    n = noise(incidents, [("sw9", 500), ("sw1", 20)])
    assert n["cis"] == [
        {"ci": "sw9", "events": 500, "incidents": 0},
        {"ci": "sw1", "events": 20, "incidents": 2},
    ]
    assert n["rules"] == [
        {"rule": "flap", "events": 15, "incidents": 2},
        {"rule": "down", "events": 40, "incidents": 1},
    ]
    # Without an event store the CIs are ranked by what their incidents took in.
    assert [c["ci"] for c in noise(incidents, None)["cis"]] == ["sw2", "sw1"]


SERVICES = parse_services(
    loads("services: {web: {target: 0.99, all_of: [fw1]}, dns: {any_of: [dns1, dns2]}}")
)


def test_availability_over_exactly_the_period_maintenance_excluded() -> None:
    settings = parse_settings(
        loads("maintenance: [{start: '2026-11-30T10:00:00Z', end: '2026-11-30T12:00:00Z', services: [web]}]")
    )
    rows = AvailabilityInput(
        settings,
        SERVICES,
        [("web", MON - 30 * DAY), ("dns", MON + 12 * H)],
        [
            ("web", MON - DAY, MON - DAY + 600),  # before the period: not counted
            ("web", MON + H, MON + H + 1800),  # 30 min down
            ("web", MON + 11 * H, MON + 13 * H),  # 1 h outside maintenance
            ("web", MON + 23 * H, None),  # still open: counted up to the period's end
        ],
    )
    a = availability(rows, MON, MON + DAY)
    assert a is not None
    web, dns = sorted(a["services"], key=lambda s: s["service"] != "web")
    observed = DAY - 2 * H
    down = 1800 + H + H
    assert web["downtime_seconds"] == down and web["outages"] == 3
    assert web["availability"] == pytest.approx(1 - down / observed)
    assert web["mtrs_seconds"] == pytest.approx(down / 3) and web["mtbf_seconds"] == pytest.approx(
        (observed - down) / 3
    )
    assert web["met"] is False and a["breached"] == 1 and web["target"] == 0.99
    assert [o["seconds"] for o in web["outage_list"]] == [H, H, 1800]
    assert web["outage_list"][-1]["end"] is not None and web["outage_list"][1]["end"] is None
    # dns was first tracked at noon: only the afternoon is observed; default target.
    assert dns["availability"] == 1.0 and dns["outages"] == 0 and dns["mtbf_seconds"] is None
    assert dns["met"] is True and dns["target"] == 0.999


def test_availability_not_yet_observed_is_null() -> None:
    rows = AvailabilityInput(parse_settings(loads("{}")), SERVICES, [("web", MON + 2 * DAY)], [])
    a = availability(rows, MON, MON + DAY)
    assert a is not None and all(s["availability"] is None and s["met"] is None for s in a["services"])
    assert availability(None, MON, MON + DAY) is None
