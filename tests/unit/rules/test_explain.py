"""`rules explain` over several events: each level-2 rule's key, state in words and hooks, with timers
shown at their own time between the events (rule files written by each test)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from correlator.config import Config
from correlator.event import Event, event_from_dict, parse_time
from correlator.rules.explain import EventTrace, TimerTrace, Trace, explain
from correlator.rules.reload import RulesHolder

START = parse_time("2026-11-30T10:00:00Z")


def E(at: float, type_: str, host: str = "r1", **fields: Any) -> Event:
    doc = {"id": f"{type_}@{at:g}", "host": host, "type": type_, "time": START + at, **fields}
    return event_from_dict(doc, "test", START + at, recorded=True)


async def run(tmp_path: Path, rules: str, *events: Event, wait: float = 0.0) -> Trace:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "r.yaml").write_text(textwrap.dedent(rules))
    holder = RulesHolder(rules_dir)
    holder.load_initial()
    return await explain(holder, Config(), list(events), wait)


def kinds(trace: Trace) -> list[str]:
    return ["event" if isinstance(i, EventTrace) else "timer" for i in trace.timeline]


def event(trace: Trace, n: int) -> EventTrace:
    [item] = [i for i in trace.timeline if isinstance(i, EventTrace) and i.n == n]
    return item


def timers(trace: Trace) -> list[TimerTrace]:
    return [i for i in trace.timeline if isinstance(i, TimerTrace)]


THRESHOLD = """
rules:
  - name: auth-storm
    kind: threshold
    match: {type: auth.fail}
    count: 3
    within: 1m
    on_fire:
      - emit: {type: auth.storm, severity: major, message: "{host} storm"}
  - name: storm-then-login
    kind: sequence
    steps: [{type: auth.storm}, {type: login.ok}]
    within: 5m
"""


async def test_threshold_counts_in_words_and_the_emitted_event_enters_level_2(tmp_path: Path) -> None:
    trace = await run(tmp_path, THRESHOLD, E(0, "auth.fail"), E(10, "auth.fail"), E(20, "auth.fail"))
    assert kinds(trace) == ["event", "event", "event"]
    [first] = event(trace, 1).level2
    assert (first.rule, first.key) == ("auth-storm", ("r1",))
    assert first.before == "threshold: 0 of 3 within 1m"
    assert first.after == "threshold: 1 of 3 within 1m (counting since 10:00:00Z)"
    assert trace.where("auth-storm") == f"{tmp_path}/rules/r.yaml:3:5"
    fired, emitted = event(trace, 3).level2
    assert fired.before == "threshold: 2 of 3 within 1m (counting since 10:00:00Z)"
    assert fired.after == "threshold: fired; quiet until 10:01:00Z, then a new count starts"
    [hook] = fired.fired
    assert hook.hook == "fire" and [e.type for e in hook.events] == ["auth.storm"]
    assert (emitted.rule, emitted.depth, emitted.event.type) == ("storm-then-login", 1, "auth.storm")
    assert emitted.after == "sequence: step 1 of 2 done; login.ok due by 10:05:20Z"
    text = trace.text()
    assert "  auth-storm (" in text and "r.yaml:3:5), key r1" in text
    assert "threshold: 2 of 3 within 1m (counting since 10:00:00Z) -> fired; quiet until 10:01:00Z" in text
    assert "       hook fire\n         emit auth.storm (major) on r1: 'r1 storm'" in text
    assert "  emitted auth.storm (" in text


PAIR = """
rules:
  - name: link
    kind: pair
    match: {type: linkDown}
    close: {type: linkUp}
    group_by: [host, resource]
    within: 30s
    on_timeout: [{incident: {action: open, title: "{host} {resource} down"}}]
    on_recover: [{incident: {action: resolve}}]
"""


async def test_pair_timeout_fires_between_the_events_at_its_own_time(tmp_path: Path) -> None:
    down, up = E(0, "linkDown", resource="Gi0/3"), E(50, "linkUp", resource="Gi0/3")
    trace = await run(tmp_path, PAIR, down, E(45, "syslog"), up)
    assert kinds(trace) == ["event", "timer", "event", "event"]
    [opened] = event(trace, 1).level2
    assert opened.before == "pair: nothing open"
    assert opened.after == "pair: opened 10:00:00Z, waiting for the close until 10:00:30Z"
    assert [f.hook for f in opened.fired] == ["open"]
    [timer] = timers(trace)
    assert (timer.fired.at, timer.fired.hook, timer.fired.key) == (START + 30, "timeout", ("r1", "Gi0/3"))
    assert timer.fired.made is not None and timer.fired.made.type == "link.timeout"
    assert [(r.action, r.key) for r in timer.fired.responses] == [("open", "link:r1/Gi0/3")]
    assert timer.state == "pair: timed out at 10:00:30Z; a close within 1d after that recovers it"
    assert event(trace, 2).level2 == []  # syslog: no level-2 rule takes it
    [closed] = event(trace, 3).level2
    assert closed.after == "pair: nothing open"
    assert [(f.hook, [r.action for r in f.responses]) for f in closed.fired] == [("recover", ["resolve"])]
    text = trace.text()
    assert "== timer at 2026-11-30T10:00:30Z: link (" in text
    assert "hook timeout: made link.timeout (info) on r1/Gi0/3: 'linkDown not closed within 30s'" in text
    assert "         incident open 'link:r1/Gi0/3': 'r1 Gi0/3 down'" in text
    assert "       hook open (the rule has no on_open)" in text
    # the timer's lines come between event 1 and event 2
    assert text.index("== event 1 ") < text.index("== timer at") < text.index("== event 2 ")


FLAPPING = """
rules:
  - name: flap
    kind: flapping
    match: {type: {in: [up, down]}}
    state: type
    within: 10m
    high: 3
    low: 1
    on_start: [{incident: {action: open, title: "{host} flapping"}}]
  - name: link
    kind: pair
    match: {type: down}
    close: {type: up}
    within: 30s
"""


async def test_flapping_changes_suppression_and_the_stop_timer(tmp_path: Path) -> None:
    evs = [E(0, "down"), E(60, "up"), E(120, "down"), E(180, "up")]
    trace = await run(tmp_path, FLAPPING, *evs, wait=15 * 60)
    flap = event(trace, 3).level2[0]
    assert flap.before == "flapping: 1 change in 10m, state up (flaps at 3)"
    assert flap.after == "flapping: 2 changes in 10m, state down (flaps at 3)"
    started = event(trace, 4)
    [flap] = started.level2  # suppressed: the pair after it does not see the event
    assert flap.after == "flapping: since 10:03:00Z, 3 changes in 10m, state up (stops at 1 or fewer)"
    assert flap.suppressed and ("attributes.suppressed_by", flap.changes[0][1], "flap") == flap.changes[0]
    [hook] = flap.fired
    assert hook.hook == "start" and hook.made is not None and hook.made.type == "flapping"
    assert started.not_reached == [("link", "not reached: suppressed by flap")]
    *link_timeouts, stop = timers(trace)
    assert [t.fired.at - START for t in link_timeouts] == [30, 150]  # the downs at 0 and 2m
    assert (stop.fired.hook, stop.fired.at) == ("stop", START + 720)  # the change at 2m aged out
    assert stop.state == "flapping: 1 change in 10m, state up (flaps at 3)"
    text = trace.text(show_unmatched=True)
    assert "suppressed: the later level-2 rules do not see the event" in text
    assert "   - link (" in text and "): not reached: suppressed by flap" in text


SEQUENCE = """
rules:
  - name: takeover
    kind: sequence
    steps: [{type: login.failed}, {type: login.ok}, {type: priv.change}]
    group_by: [attributes.user]
    within: 5m
    on_complete: [{emit: {type: security.takeover, severity: critical}}]
"""


async def test_sequence_steps_in_words(tmp_path: Path) -> None:
    user = {"attributes": {"user": "bob"}}
    evs = [E(0, "login.failed", **user), E(60, "login.ok", **user), E(90, "priv.change", **user)]
    trace = await run(tmp_path, SEQUENCE, *evs)
    states = [(r.before, r.after) for n in (1, 2, 3) for r in event(trace, n).level2]
    waiting = "sequence: waiting for login.failed (step 1 of 3)"
    one = "sequence: step 1 of 3 done; login.ok due by 10:05:00Z"
    two = "sequence: step 2 of 3 done; priv.change due by 10:05:00Z"
    assert states == [(waiting, one), (one, two), (two, waiting)]
    [done] = event(trace, 3).level2
    assert done.key == ("bob",)
    [hook] = done.fired
    assert hook.hook == "complete" and hook.extra["steps"] == [
        "login.failed@0",
        "login.ok@60",
        "priv.change@90",
    ]
    assert [e.type for e in hook.events] == ["security.takeover"]


async def test_level_1_state_carries_from_one_event_to_the_next(tmp_path: Path) -> None:
    rules = "rules: [{name: fold, match: {type: x}, dedup: 5m}]\n"
    trace = await run(tmp_path, rules, E(0, "x"), E(10, "x"))
    assert event(trace, 1).event_out is not None
    second = event(trace, 2)
    assert second.event_out is None and second.level1.removed == "duplicate"
    assert "event removed (duplicate)" in trace.text()


async def test_json_trace(tmp_path: Path) -> None:
    trace = await run(tmp_path, PAIR, E(0, "linkDown"), E(40, "linkUp"))
    doc = trace.as_dict()
    assert (doc["level1_rules"], doc["level2_rules"]) == (0, 1)
    assert [i["kind"] for i in doc["timeline"]] == ["event", "timer", "event"]
    first, timer, last = doc["timeline"]
    assert first["event_in"]["type"] == "linkDown" and first["steps"] == []
    [rec] = first["level2"]
    assert {k: rec[k] for k in ("rule", "key", "depth", "before", "suppressed")} == {
        "rule": "link",
        "key": ["r1", ""],
        "depth": 0,
        "before": "pair: nothing open",
        "suppressed": False,
    }
    assert rec["hooks"][0]["hook"] == "open" and rec["where"].endswith("r.yaml:3:5")
    assert (timer["time"], timer["rule"], timer["hook"]) == ("2026-11-30T10:00:30Z", "link", "timeout")
    assert first["time"] == "2026-11-30T10:00:00Z" and first["event_in"]["time"] == first["time"]
    assert timer["made"]["time"] == "2026-11-30T10:00:30Z"  # ISO 8601 wherever a person reads
    assert timer["made"]["type"] == "link.timeout"
    assert timer["responses"][0] == {
        "kind": "IncidentRequest",
        "action": "open",
        "key": "link:r1/",
        "event": {"id": timer["made"]["id"], "type": "link.timeout", "host": "r1"},
        "rule": "link",
        "title": "r1  down",
        "description": "",
        "impact": None,
        "urgency": None,
        "assignment_group": None,
        "major": False,
    }
    assert timer["state"].startswith("pair: timed out at 10:00:30Z")
    assert [h["hook"] for h in last["level2"][0]["hooks"]] == ["recover"]


async def test_a_sequence_timeout_shows_at_its_own_time(tmp_path: Path) -> None:
    rules = SEQUENCE + "    on_timeout: [{incident: {action: open, title: 'no {attributes.user}'}}]\n"
    trace = await run(tmp_path, rules, E(0, "login.failed", attributes={"user": "eve"}), wait=600)
    [timer] = timers(trace)
    assert (timer.fired.hook, timer.fired.at, timer.fired.key) == ("timeout", START + 300, ("eve",))
    assert timer.fired.made is not None and timer.fired.made.type == "takeover.timeout"
    assert timer.state == "sequence: waiting for login.failed (step 1 of 3)"
    assert "== timer at 2026-11-30T10:05:00Z: takeover (" in trace.text()


async def test_explain_shows_which_incident_each_event_opened_or_joined(tmp_path: Path) -> None:
    """The incident stage runs too: the timer's request opens INC-000001, the linkUp resolves it."""
    down, up = E(0, "linkDown", resource="Gi0/3"), E(50, "linkUp", resource="Gi0/3")
    trace = await run(tmp_path, PAIR, down, up)
    [timer] = timers(trace)
    assert [(i.incident, i.outcome, i.rule) for i in timer.incidents] == [("INC-000001", "opened", "link")]
    assert [(i.incident, i.outcome) for i in event(trace, 2).incidents] == [("INC-000001", "resolved")]
    assert event(trace, 1).incidents == []
    text = trace.text()
    assert "incident INC-000001 opened by rule link (key link:r1/Gi0/3): r1 Gi0/3 down" in text
    assert "incident INC-000001 resolved by rule link" in text
    assert "== outcome" in text and "reduction: 2 events in, 1 incidents out" in text
    doc = trace.as_dict()
    [inc] = doc["incidents"]
    assert (inc["id"], inc["status"], inc["opened_at"], inc["resolved_at"]) == (
        "INC-000001",
        "resolved",
        "2026-11-30T10:00:30Z",
        "2026-11-30T10:00:50Z",
    )
    assert doc["timeline"][1]["incidents"][0]["incident"] == "INC-000001"
