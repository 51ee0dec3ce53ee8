"""Given incidents recurring at these virtual times, expect problems, known errors and cascades.

Every test runs on SQLite and on PostgreSQL (skipped with a message where none answers).
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from correlator.event import Severity
from correlator.incidents.model import Status
from correlator.problems.conditions import ConditionError
from correlator.problems.model import IllegalTransition, KnownErrorState, ProblemState
from tests.unit.itsm.conftest import HOUR, MIN, T0, event


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def flap(w, t: float, host: str = "core-sw1", type_: str = "linkDown") -> None:
    """One incident of this signature: opened at t, resolved ten minutes later."""
    await w.feed(t, event(t, host=host, type_=type_))
    await w.feed(t + 10 * MIN, event(t + 10 * MIN, host=host, type_=type_, severity=Severity.CLEAR))


RECUR = {"problems": {"recurrence_count": 3, "recurrence_window": 6 * HOUR}}


async def test_third_recurrence_within_the_period_opens_a_problem_linking_all_three(make_world):
    w = await make_world(**RECUR)
    recurring = metric("correlator_recurring_incidents_total")
    await flap(w, T0)
    await flap(w, T0 + HOUR, host="edge-1")  # another signature
    await flap(w, T0 + 2 * HOUR)  # reopened within the incident reopen window: counts again
    assert await w.problems.query_problems((), 10, None) == []
    await flap(w, T0 + 4 * HOUR)
    [p] = await w.problems.query_problems((), 10, None)
    assert p.state is ProblemState.OPEN and p.signature == "core-sw1/linkDown|stand-in|core-sw1"
    assert p.to_api()["signature"] == {"key": "core-sw1/linkDown", "rule": "stand-in", "host": "core-sw1"}
    inc_ids = sorted(set(p.incidents))
    for i in inc_ids:
        inc, timeline = await w.incidents.get(i)
        assert inc.problem_id == p.human_id
        assert any(e.actor == f"problem:{p.human_id}" for e in timeline)
    assert metric("correlator_recurring_incidents_total") == recurring + len(inc_ids)
    assert metric("correlator_problems_open", state="open") == 1
    await flap(w, T0 + 5 * HOUR)  # a fourth one joins the open problem
    p, _ = await w.problems.get_problem(p.id)
    assert len(p.incidents) >= len(inc_ids)
    trend = await w.problems.trend(T0 - HOUR, 5)
    assert trend[0]["signature"]["host"] == "core-sw1" and trend[0]["count"] == 4
    assert trend[0]["problem_id"] == p.human_id and trend[1]["count"] == 1


async def test_occurrences_outside_the_period_do_not_add_up_even_across_a_restart(make_world):
    w = await make_world(**RECUR)
    await flap(w, T0, type_="fanFail")
    await flap(w, T0 + 7 * HOUR, type_="fanFail")  # the first has left the 6h period
    w2 = await make_world(clock=w.clock, **RECUR)  # restart: occurrences come back from the store
    await flap(w2, T0 + 8 * HOUR, type_="fanFail")
    assert await w2.problems.query_problems((), 10, None) == []
    await flap(w2, T0 + 9 * HOUR, type_="fanFail")
    assert len(await w2.problems.query_problems((), 10, None)) == 1


async def test_new_incidents_matching_a_known_error_get_its_workaround(make_world):
    w = await make_world()
    ke = await w.problems.create_known_error(
        "alice",
        "Gi0/1 optics flap on core switches",
        {
            "host": {"glob": "core-*"},
            "type": ["linkDown", "linkFlap"],
            "attributes.incident.rule": "stand-in",
        },
        "Reseat the SFP in Gi0/1; see KB-12",
        None,
    )
    matches = metric("correlator_known_error_matches_total")
    await w.feed(T0, event(T0, host="core-sw2"), event(T0, host="edge-1"))
    core, edge = w.incidents.active_for("core-sw2/linkDown"), w.incidents.active_for("edge-1/linkDown")
    assert (core.known_error_id, core.workaround) == (ke.human_id, "Reseat the SFP in Gi0/1; see KB-12")
    assert (edge.known_error_id, edge.workaround) == (None, "")
    assert metric("correlator_known_error_matches_total") == matches + 1
    ke, log = await w.problems.get_known_error(ke.id)
    assert ke.matched == 1 and [e.action for e in log] == ["create", "attach"]
    with pytest.raises(ConditionError, match="unknown operator 'regexp'"):
        await w.problems.create_known_error("a", "t", {"host": {"regexp": "x"}}, "w", None)


async def test_problem_to_known_error_to_resolved_cascades_to_its_incidents(make_world):
    w = await make_world(**RECUR)
    await w.feed(T0, event(T0, host="db1"), event(T0, host="db2"))
    i1, i2 = w.incidents.active_for("db1/linkDown"), w.incidents.active_for("db2/linkDown")
    p = await w.problems.create_problem("alice", "storage latency", "", [i1.id])
    ke = await w.problems.create_known_error(
        "alice", "SAN firmware", {"host": {"regex": "^db"}}, "fail over to SAN B", p.id
    )
    p, _ = await w.problems.get_problem(p.id)
    assert p.state is ProblemState.KNOWN_ERROR and p.known_error_id == ke.id
    await w.problems.link_incident(p.id, i2.id, "alice")
    await w.feed(T0 + MIN, event(T0 + MIN, host="db3"))  # matches the known error: joins the problem
    i3 = w.incidents.active_for("db3/linkDown")
    assert (i3.known_error_id, i3.problem_id) == (ke.human_id, p.human_id)
    p, resolved = await w.problems.resolve(p.id, "alice", "firmware 9.1 fixed it", resolve_incidents=True)
    assert sorted(resolved) == sorted([i1.human_id, i2.human_id, i3.human_id])
    for i in (i1, i2, i3):
        inc, _ = await w.incidents.get(i.id)
        assert inc.status is Status.RESOLVED and inc.resolution_code == "problem_resolved"
    ke, _ = await w.problems.get_known_error(ke.id)
    assert ke.state is KnownErrorState.RETIRED  # no longer attached to new incidents
    await w.feed(T0 + HOUR, event(T0 + HOUR, host="db4"))
    assert w.incidents.active_for("db4/linkDown").known_error_id is None
    with pytest.raises(IllegalTransition, match="resolved"):
        await w.problems.resolve(p.id, "alice")
    assert metric("correlator_problems_open", state="known_error") == 0


async def test_three_occurrences_in_one_batch_are_three_and_open_the_problem(make_world):
    """Opened, then reopened twice, all in one batch: every opening counts, not only the last."""
    w = await make_world(**RECUR)
    clear = Severity.CLEAR
    batch = [
        event(T0, id="o1"),
        event(T0 + 1, id="c1", severity=clear),
        event(T0 + 2, id="o2"),
        event(T0 + 3, id="c2", severity=clear),
        event(T0 + 4, id="o3"),
    ]
    await w.feed(T0 + 5, *batch)
    [p] = await w.problems.query_problems((), 10, None)
    assert p.signature == "core-sw1/linkDown|stand-in|core-sw1"
    inc = w.incidents.active_for("core-sw1/linkDown")
    assert inc.reopen_count == 2 and p.incidents == [inc.id]
    trend = await w.problems.trend(T0 - HOUR, 5)
    assert trend[0]["count"] == 3


async def test_one_off_signatures_are_forgotten_two_periods_later_and_recurrence_still_counts(make_world):
    w = await make_world(**RECUR)
    await flap(w, T0, host="once-1")  # a one-off alert: its signature never comes back
    await flap(w, T0 + HOUR, type_="fanFail")
    await flap(w, T0 + 13 * HOUR, type_="fanFail")  # two 6h periods after once-1
    # Nothing else shows what problem management remembers: a storm of one-off alerts must not
    # keep an entry per alert for the daemon's life.
    assert not any("once-1" in sig for sig in w.problems._recent)
    await flap(w, T0 + 14 * HOUR, type_="fanFail")
    await flap(w, T0 + 15 * HOUR, type_="fanFail")
    [p] = await w.problems.query_problems((), 10, None)
    assert p.signature == "core-sw1/fanFail|stand-in|core-sw1"


async def test_a_batch_the_store_cannot_count_still_gets_its_known_errors(make_world, caplog):
    w = await make_world(**RECUR)
    ke = await w.problems.create_known_error("alice", "fan", {"type": "fanFail"}, "Swap the fan tray", None)

    async def unavailable(occurrences):
        raise OSError("disk full")

    w.records.add_occurrences = unavailable  # type: ignore[method-assign]
    for hour in range(3):
        await flap(w, T0 + hour * HOUR, type_="fanFail")
    inc = w.incidents.active_for("core-sw1/fanFail") or (await w.incidents.get(1))[0]
    assert inc.known_error_id == ke.human_id
    assert await w.problems.query_problems((), 10, None) == []  # nothing counted, nothing opened
    assert "could not store 1 incident openings" in caplog.text


async def test_the_oldest_matching_known_error_wins_as_known_errors_come_and_go(make_world):
    w = await make_world()
    ke = [await w.problems.create_known_error("a", f"ke{n}", {"host": {"glob": "core-*"}}, f"w{n}", None)
          for n in (1, 2)]  # fmt: skip
    await w.feed(T0, event(T0, host="core-1"))
    assert w.incidents.active_for("core-1/linkDown").known_error_id == ke[0].human_id
    await w.problems.retire_known_error(ke[0].id, "a")
    await w.feed(T0 + MIN, event(T0 + MIN, host="core-2"))
    assert w.incidents.active_for("core-2/linkDown").known_error_id == ke[1].human_id
    await w.problems.retire_known_error(ke[1].id, "a")
    newer = await w.problems.create_known_error("a", "ke3", {"host": "core-3"}, "w3", None)
    await w.feed(T0 + 2 * MIN, event(T0 + 2 * MIN, host="core-3"), event(T0 + 2 * MIN, host="core-4"))
    assert w.incidents.active_for("core-3/linkDown").known_error_id == newer.human_id
    assert w.incidents.active_for("core-4/linkDown").known_error_id is None
