"""sequence: login failure, then login success, then privilege change, same user within 5 minutes."""

from __future__ import annotations

from pathlib import Path

from correlator import yamlfile
from correlator.correlation import actions, snapshot
from correlator.correlation.rulespec import describe_match
from correlator.correlation.sequence import SequenceRule
from correlator.event import Severity
from correlator.responses import IncidentRequest
from correlator.rules.testing import run_test_file

from .support import E, Run, by, m, types
from .test_docs import blocks as doc_blocks


def takeover() -> SequenceRule:
    return SequenceRule(
        "account-takeover",
        [m(type="login.failed"), m(type="login.ok"), m(type="priv.change")],
        by("attributes.user"),
        within=300,
        hooks={"complete": [actions.emit("security.takeover", message=lambda e: "takeover?")]},
    )


async def test_steps_in_order_within_the_window_complete() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"), E(10, "login.ok", user="bob"), E(20, "priv.change", user="bob")
    )
    assert types(out)[-1] == "security.takeover"
    assert out[-1].attributes["correlation"]["steps"] == [e.id for e in out[:3]]


async def test_wrong_order_does_not_complete() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.ok", user="bob"), E(10, "login.failed", user="bob"), E(20, "priv.change", user="bob")
    )
    assert "security.takeover" not in types(out)


async def test_too_slow_does_not_complete_and_a_new_run_can_start() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"),
        E(200, "login.ok", user="bob"),
        E(400, "priv.change", user="bob"),
        E(500, "login.failed", user="bob"),
        E(510, "login.ok", user="bob"),
        E(520, "priv.change", user="bob"),
    )
    assert types(out).count("security.takeover") == 1
    assert out[-1].attributes["correlation"]["elapsed"] == 20


async def test_users_are_separate() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"), E(10, "login.ok", user="eve"), E(20, "priv.change", user="bob")
    )
    assert "security.takeover" not in types(out)


# -- on_timeout: a run that does not complete in time ----------------------------------------------


def watched(timeout_type: str | None = None, severity: Severity | None = None) -> SequenceRule:
    """The takeover sequence with a timeout hook opening an incident."""
    return SequenceRule(
        "account-takeover",
        [m(type="login.failed"), m(type="login.ok"), m(type="priv.change")],
        by("attributes.user"),
        within=300,
        hooks={
            "complete": [actions.emit("security.takeover")],
            "timeout": [actions.incident("open", title=lambda e: e.message)],
        },
        timeout_type=timeout_type,
        severity=severity,
        step_texts=["login.failed", "login.ok", "priv.change"],
    )


async def test_a_run_not_complete_at_first_plus_within_times_out_then_and_not_before() -> None:
    run = Run(watched())
    await run.feed(E(0, "login.failed", "vpn1", user="bob"), E(10, "login.ok", "vpn2", "minor", user="bob"))
    assert await run.advance(299.999) == []
    assert run.take_responses() == []
    [ev] = await run.advance(300)
    assert (ev.type, ev.time, ev.host, ev.severity, ev.source) == (
        "account-takeover.timeout",
        300,
        "vpn2",  # made from the run's last event
        Severity.MINOR,
        "correlator",
    )
    c = ev.attributes["correlation"]
    assert c["hook"] == "timeout" and c["key"] == ["bob"] and c["started_at"] == 0
    assert c["steps"] == ["login.failed@vpn1/@0", "login.ok@vpn2/@10"]
    assert (c["reached"], c["missing"]) == (2, "priv.change")
    assert ev.message == "sequence stopped after step 2 of 3: no priv.change within 300s"
    [req] = run.take_responses()
    assert isinstance(req, IncidentRequest)
    assert (req.action, req.key, req.title) == ("open", "account-takeover:bob", ev.message)
    assert await run.advance(1000) == []  # once


async def test_a_completed_run_never_times_out() -> None:
    run = Run(watched())
    out = await run.feed(
        E(0, "login.failed", user="bob"), E(10, "login.ok", user="bob"), E(20, "priv.change", user="bob")
    )
    assert types(out)[-1] == "security.takeover"
    assert await run.advance(1000) == []
    assert run.take_responses() == []


async def test_a_repeated_first_step_does_not_restart_the_run_and_after_a_timeout_the_key_is_free() -> None:
    run = Run(watched())
    out = await run.feed(
        E(0, "login.failed", user="bob"),
        E(100, "login.failed", user="bob"),  # same run: the deadline stays at 300
        E(310, "login.failed", user="bob"),  # after the timeout: a new run
        E(320, "login.ok", user="bob"),
        E(330, "priv.change", user="bob"),
    )
    assert types(out) == [
        "login.failed",
        "login.failed",
        "account-takeover.timeout",
        "login.failed",
        "login.ok",
        "priv.change",
        "security.takeover",
    ]
    timeout = out[2]
    assert timeout.time == 300
    assert timeout.attributes["correlation"]["steps"] == ["login.failed@r1/@0"]
    assert timeout.attributes["correlation"]["missing"] == "login.ok"
    assert out[-1].attributes["correlation"]["steps"] == [e.id for e in out[3:6]]
    assert await run.advance(2000) == []


async def test_a_last_step_at_exactly_first_plus_within_comes_after_the_timeout() -> None:
    steps = (
        E(0, "login.failed", user="bob"),
        E(10, "login.ok", user="bob"),
        E(300, "priv.change", user="bob"),
    )
    assert types(await Run(watched()).feed(*steps))[2:] == ["account-takeover.timeout", "priv.change"]
    assert types(await Run(takeover()).feed(*steps))[2:] == ["priv.change", "security.takeover"]


async def test_each_key_times_out_at_its_own_deadline_with_one_rule_timer() -> None:
    rule = watched()
    run = Run(rule)
    await run.feed(*(E(i * 50, "login.failed", user=f"u{i}") for i in range(4)))
    assert run.clock.pending() == 2  # the rule's timer and the stage's sweep
    out = await run.advance(1000)
    assert [(e.time, e.attributes["correlation"]["key"]) for e in out] == [
        (300, ["u0"]),
        (350, ["u1"]),
        (400, ["u2"]),
        (450, ["u3"]),
    ]
    assert rule.keys() == 0


async def test_timeout_type_and_severity_name_the_timeout_event() -> None:
    run = Run(watched(timeout_type="login.abandoned", severity=Severity.WARNING))
    await run.feed(E(0, "login.failed", severity="info", user="bob"))
    [ev] = await run.advance(300)
    assert (ev.type, ev.severity) == ("login.abandoned", Severity.WARNING)


async def test_a_run_found_past_its_deadline_by_an_event_times_out_there() -> None:
    # An out-of-order start (within the allowed lateness) sits behind a later deadline in the table,
    # so its own deadline may pass before the rule timer reaches it; the next event of its key ends it.
    run = Run(watched())
    await run.feed(E(100, "login.failed", user="amy"), E(96, "login.failed", user="bob"))
    out = await run.feed(E(398, "login.ok", user="bob"))
    assert [(e.type, e.time) for e in out] == [("login.ok", 398), ("account-takeover.timeout", 396)]
    assert [(e.time, e.attributes["correlation"]["key"]) for e in await run.advance(1000)] == [(400, ["amy"])]


async def test_without_on_timeout_nothing_is_armed_and_stale_runs_expire_as_before() -> None:
    rule = takeover()
    run = Run(rule)
    await run.feed(E(0, "login.failed", user="bob"), E(10, "login.ok", user="bob"))
    assert run.clock.pending() == 1  # the sweep only
    assert await run.advance(1000) == []
    assert rule.keys() == 0  # expired by the sweep


async def test_a_pending_deadline_survives_a_restart_and_fires_on_the_first_tick(tmp_path: Path) -> None:
    path = tmp_path / "correlation.db"
    first = Run(watched())
    await first.feed(E(0, "login.failed", user="bob"), E(10, "login.ok", user="bob"))
    assert await snapshot.save(first.stage, path) > 0

    soon = Run(watched(), start=50)  # restarted before the deadline
    assert list(snapshot.restore(soon.stage, path)) == ["account-takeover"]
    assert await soon.advance(299) == []
    [ev] = await soon.advance(301)
    assert (ev.time, ev.attributes["correlation"]["reached"]) == (300, 2)

    late = Run(watched(), start=5000)  # stopped past the deadline: fires at the first tick, at its time
    snapshot.restore(late.stage, path)
    [again] = await late.advance(5001)
    assert again.time == 300 and again.id == ev.id  # same derived id: the store keeps it once


async def test_a_snapshot_from_before_timeouts_restores() -> None:
    rule = watched()
    run = Run(rule)
    rule.restore([[["bob"], {"start": 0.0, "step": 1, "ids": ["a1"]}]])
    [ev] = await run.advance(300)
    assert ev.attributes["correlation"]["steps"] == ["a1"]
    assert (ev.host, ev.severity) == ("", Severity.INFO)


def test_missing_names_the_step_by_its_type_or_as_written() -> None:
    assert describe_match({"type": "priv.change"}) == "priv.change"
    assert (
        describe_match({"type": "a", "severity": {"in": ["major", "critical"]}})
        == "{type: a, severity: {in: [major, critical]}}"
    )
    assert describe_match({"attributes.admin": True}) == "{attributes.admin: true}"


RULE_TESTS = Path(__file__).parent / "rule_tests"


def test_the_rule_tests_of_the_documented_timeout_example_pass() -> None:
    result = run_test_file(RULE_TESTS / "sequence_test.yaml")
    assert not result.errors, result.errors
    assert {c.name: c.problems for c in result.cases if not c.ok} == {}
    assert len(result.cases) == 3


def test_the_documented_timeout_example_is_the_tested_rule() -> None:
    tested = yamlfile.load(RULE_TESTS / "change-verification.yaml")
    documented = [yamlfile.loads(b, "doc") for b in doc_blocks() if "change-not-verified" in b]
    assert documented == [tested]
