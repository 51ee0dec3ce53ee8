"""The rule indexes (level 1 and level 2) give exactly the rules a linear scan gives, in rule order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlation.core import Engine
from correlator.correlation.index import _SOURCES_KEPT, EngineIndex
from correlator.correlation.rulespec import matchable_types
from correlator.correlation.stage import Correlate
from correlator.event import Event, Severity
from correlator.inventory import Inventory
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext
from correlator.rules.ruleset import RuleSet

TYPES = ["a", "b", "c", "d.x", "d.y"]
HOSTS = ["h1", "h2", "h3"]
SOURCES = ["test", "webhook:a", "mqtt:b"]


def _pin(values: list[str]) -> st.SearchStrategy[Any]:
    """What a rule can say about a field: nothing, one value, a list, in/equals, a pattern."""
    one = st.sampled_from(values)
    some = st.lists(one, min_size=1, max_size=3, unique=True)
    return st.one_of(
        st.none(),
        one,
        some,
        some.map(lambda v: {"in": v}),
        one.map(lambda v: {"equals": v}),
        st.just({"glob": "d.*"}),
        st.just({"regex": "^h[12]$"}),
    )


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for field, values in (("type", TYPES), ("host", HOSTS)):
        pin = draw(_pin(values))
        if pin is not None:
            spec[field] = pin
    source = draw(st.sampled_from([None, None, {"glob": "webhook:*"}, {"glob": "*:?"}, "test"]))
    if source is not None:
        spec["source"] = source
    if draw(st.booleans()):
        spec["severity"] = {"in": ["major", "critical"]}
    return spec


def _flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return f"'{v}'"


def level2_rules(specs: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> list[Engine]:
    lines = ["rules:"]
    for i, (kind, match, close) in enumerate(specs):
        if kind == "pair" and close is not None:
            body = f"match: {_flow(match)}, close: {_flow(close)}, within: 1m"
        else:
            body = f"match: {_flow(match)}, count: 2, within: 1m"
            kind = "threshold"
        lines.append(f"  - {{name: r{i}, kind: {kind}, {body}}}")
    ctx = BuildContext(Path("."), Inventory())
    return [r.compiled for r in compile_texts({"l2.yaml": "\n".join(lines) + "\n"}, ctx)]


def events() -> st.SearchStrategy[Event]:
    return st.builds(
        lambda t, h, s, src: Event("e", 0.0, 0.0, src, h, t, Severity(s)),
        st.sampled_from([*TYPES, "zzz"]),
        st.sampled_from([*HOSTS, "h9"]),
        st.sampled_from(["info", "major", "critical"]),
        st.sampled_from(SOURCES),
    )


def _admits(e: Engine, ev: Event) -> bool:
    """The index's contract, rule by rule: its types, else its hosts, else its pattern admit the event."""
    if e.types is not None:
        return ev.type in e.types
    if e.hosts is not None:
        return ev.host in e.hosts
    if e.pattern is not None:
        return bool(e.pattern[1](ev.source if e.pattern[0] == "source" else ev.type))
    return True


rule_specs = st.lists(
    st.tuples(st.sampled_from(["threshold", "pair"]), matches(), st.one_of(st.none(), matches())),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(rule_specs, st.lists(events(), min_size=1, max_size=10))
def test_level2_index_gives_the_rules_a_scan_gives_in_order(specs: Any, evs: list[Event]) -> None:
    engines = level2_rules(specs)
    index = EngineIndex(engines)
    for ev in evs:
        found = index.rules_for(ev.type, ev.host, ev.source)
        # what the stage used to do: every rule, in order, admitted by its pins
        admitted = [e for e in engines if _admits(e, ev)]
        assert list(found) == admitted
        # and no rule that matches the event is ever left out
        assert [e for e in found if e.match(ev)] == [e for e in engines if e.match(ev)]
        # a rule that pins nothing but the type is taken without its matcher: the same rules
        assert [e for e in found if e.pinned_only or e.match(ev)] == [e for e in found if e.match(ev)]
        # what the stage tests (`check`: the match less the type or source glob the index decided)
        # takes the same rules
        assert [e for e in found if e.check is None or e.check(ev)] == [e for e in found if e.match(ev)]


@settings(max_examples=150, deadline=None)
@given(st.lists(matches(), max_size=12), st.lists(events(), min_size=1, max_size=10))
def test_level1_index_gives_the_rules_a_scan_gives_in_order(specs: Any, evs: list[Event]) -> None:
    lines = ["rules:"] + [
        f"  - {{name: f{i}, match: {_flow(m)}, set: {{attributes.f{i}: true}}}}" for i, m in enumerate(specs)
    ]
    ctx = BuildContext(Path("."), Inventory())
    rs = RuleSet(compile_texts({"l1.yaml": "\n".join(lines) + "\n"}, ctx))
    for ev in evs:
        found = rs.index.candidates(ev)
        assert [r for r in found if r.match(ev)] == [r for r in rs.filters if r.match(ev)]
        # the stage tests only what the index did not: the same rules
        assert [r for r in found if r.check is None or r.check(ev)] == [r for r in found if r.match(ev)]
        assert [r.info.order for r in found] == sorted(r.info.order for r in found)


def test_the_stage_indexes_any_number_of_types() -> None:
    # far more types than any cache: every lookup is still one dict hit, never a scan of the rules
    n = 12_000
    engines = level2_rules([("threshold", {"type": f"t{i}"}, None) for i in range(n)])
    stage = Correlate(engines)
    assert stage.index.scanned == 0
    for i in (0, n // 2, n - 1):
        assert [e.name for e in stage.index.rules_for(f"t{i}", "h")] == [f"r{i}"]
    assert stage.index.rules_for("unknown", "h") == ()


def test_host_pinned_rules_are_filed_under_their_hosts() -> None:
    engines = level2_rules(
        [
            ("threshold", {"host": "h1"}, None),
            ("threshold", {"type": "a", "host": "h2"}, None),
            ("threshold", {"severity": {"in": ["major"]}}, None),
            ("threshold", {"host": ["h1", "h2"]}, None),
        ]
    )
    index = EngineIndex(engines)
    assert [e.name for e in index.rules_for("x", "h1")] == ["r0", "r2", "r3"]
    assert [e.name for e in index.rules_for("a", "h1")] == ["r0", "r1", "r2", "r3"]
    assert [e.name for e in index.rules_for("x", "h9")] == ["r2"]
    assert index.scanned == 1


def test_only_rules_that_say_nothing_but_the_type_skip_their_matcher() -> None:
    engines = level2_rules(
        [
            ("threshold", {"type": "a"}, None),
            ("threshold", {"type": ["a", "b"]}, None),
            ("threshold", {"type": {"in": ["a"]}}, None),
            ("pair", {"type": "a"}, {"type": {"equals": "b"}}),
            ("threshold", {"type": "a", "host": "h1"}, None),
            ("threshold", {"type": {"glob": "d.*"}}, None),
            ("pair", {"type": "a"}, {"type": "b", "severity": {"in": ["major"]}}),
        ]
    )
    assert [e.pinned_only for e in engines] == [True, True, True, True, False, False, False]


def test_source_globs_file_rules_under_their_pattern_not_the_scan_list() -> None:
    engines = level2_rules(
        [
            ("threshold", {"source": {"glob": "webhook:*"}, "severity": {"in": ["major"]}}, None),
            ("threshold", {"severity": {"in": ["major"]}}, None),
            ("pair", {"source": {"glob": "webhook:*"}}, {"source": {"glob": "mqtt:*"}}),
            ("threshold", {"type": "a"}, None),
        ]
    )
    assert [e.pattern is not None for e in engines] == [True, False, True, False]
    index = EngineIndex(engines)
    assert index.scanned == 1
    assert [e.name for e in index.rules_for("a", "h1", "syslog")] == ["r1", "r3"]
    assert [e.name for e in index.rules_for("a", "h1", "webhook:am")] == ["r0", "r1", "r2", "r3"]
    assert [e.name for e in index.rules_for("x", "h1", "mqtt:b")] == ["r1", "r2"]
    # sources meeting the same patterns share one table
    assert index.table("syslog") is index.table("snmp")


def test_the_stage_leaves_out_the_source_glob_the_index_decided() -> None:
    engines = level2_rules(
        [
            ("threshold", {"source": {"glob": "webhook:*"}, "severity": {"in": ["major"]}}, None),
            ("threshold", {"source": {"glob": "webhook:*"}}, None),
            ("threshold", {"source": {"glob": "webhook:*", "regex": "a$"}}, None),  # more than the glob
            ("pair", {"source": {"glob": "webhook:*"}}, {"source": {"glob": "webhook:*"}}),
            ("threshold", {"type": "a", "source": {"glob": "webhook:*"}}, None),  # filed by type
        ]
    )
    narrowed, nothing_left, whole, pair, typed = engines
    assert narrowed.check is not None and narrowed.check is not narrowed.match
    major = Event("e", 0.0, 0.0, "syslog", "h1", "a", Severity.MAJOR)
    assert narrowed.check(major) and not narrowed.match(major)  # only ever asked on webhook sources
    assert nothing_left.check is None
    assert whole.check is whole.match
    assert pair.check is pair.match
    assert typed.check is typed.match


def test_the_types_a_matcher_can_match() -> None:
    assert matchable_types({"type": "a", "severity": "major"}) == {"a"}
    assert matchable_types({"any": [{"type": "a"}, {"type": {"in": ["b", "c"]}, "host": "h"}]}) == {
        "a",
        "b",
        "c",
    }
    assert matchable_types({"any": [{"type": "a"}, {"host": "h"}]}) is None
    assert matchable_types({"all": [{"host": "h"}, {"type": "a"}]}) == {"a"}
    assert matchable_types({"not": {"type": "a"}}) is None
    assert matchable_types({}) is None


def test_sources_past_the_bound_keep_sharing_the_table_of_their_patterns() -> None:
    engines = level2_rules(
        [("threshold", {"severity": {"in": ["major"]}}, None), ("threshold", {"type": "a"}, None)]
    )
    index = EngineIndex(engines)
    first = index.table("collector-0")
    for i in range(1, 3 * _SOURCES_KEPT):  # more sources than the index keeps tables for
        assert index.table(f"collector-{i}") is first


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["webhook:a", "syslog", "webhook:b", "mqtt:b"]), min_size=1, max_size=12))
def test_a_batch_of_mixed_sources_meets_each_events_own_rules(sources: list[str]) -> None:
    import asyncio

    from correlator.clock import Clock
    from correlator.pipeline import StageContext

    engines = level2_rules(
        [
            ("threshold", {"source": {"glob": "webhook:*"}}, None),
            ("threshold", {"source": {"glob": "*:?"}, "type": "a"}, None),
            ("threshold", {"type": "a"}, None),
        ]
    )
    stage = Correlate(engines)
    # equal texts that are other objects too: the stage may look up a source again, never wrongly
    evs = [
        Event(f"e{i}", 10.0 + i, 10.0 + i, "".join(s) if i % 2 else s, "h1", "a")
        for i, s in enumerate(sources)
    ]
    before = [e.counters.matches for e in engines]  # counted by rule name, across rule sets
    asyncio.run(stage(evs, StageContext(Clock(10.0), live=False)))
    assert [e.counters.matches - n for e, n in zip(engines, before, strict=True)] == [
        sum(s.startswith("webhook:") for s in sources),
        sum(s[-2] == ":" for s in sources),
        len(sources),
    ]
