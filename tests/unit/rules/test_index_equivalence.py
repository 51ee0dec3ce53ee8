"""Level 1 as the filter stage runs it (index, pins, the match beyond them, actions as one call,
conditions kept inline) gives exactly what running every rule in order, by its whole `match`, gives."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Event, Severity
from correlator.inventory import Asset, Inventory
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext
from correlator.rules.ruleset import RuleSet

TYPES = ["a", "b", "d.x", "d.y"]
HOSTS = ["h1", "h2", "lab-1"]
SOURCES = ["snmp", "webhook:a", "syslog"]
ATTRS = ["level", "x", "site", "category", "labels"]
INVENTORY = Inventory([Asset("h1", site="par1", criticality="high"), Asset("lab-1", site="lab")])


def _field_pin(values: list[str], pattern: dict[str, Any]) -> st.SearchStrategy[Any]:
    one = st.sampled_from(values)
    return st.one_of(
        one,
        st.lists(one, min_size=1, max_size=2, unique=True),
        st.lists(one, min_size=1, max_size=2, unique=True).map(lambda v: {"in": v}),
        one.map(lambda v: {"equals": v}),
        one.map(lambda v: {"not_equals": v}),
        st.just(pattern),
        one.map(lambda v: {"in": [v, "zz"], "regex": "."}),  # values and a test: not a plain pin
    )


def _attribute_condition() -> st.SearchStrategy[tuple[str, Any]]:
    name = st.sampled_from(ATTRS)
    value = st.sampled_from(["debug", "1", "par1", "v"])
    return st.one_of(
        st.tuples(name.map(lambda n: f"attributes.{n}"), value),
        st.tuples(name.map(lambda n: f"attributes.{n}"), st.lists(value, min_size=1, max_size=2)),
        st.tuples(name.map(lambda n: f"attributes.{n}"), st.just({"exists": True})),
        st.tuples(name.map(lambda n: f"attributes.{n}"), st.just({"missing": True})),
        st.tuples(name.map(lambda n: f"attributes.{n}"), st.just({"not_equals": "v"})),
        st.tuples(name.map(lambda n: f"attributes.{n}"), st.just({"gt": 0})),
        st.tuples(st.just("attributes.labels.sev"), st.sampled_from(["page", {"in": ["page", "v"]}])),
        # plain text values: decided by the index per value when no earlier rule writes the name
        st.tuples(name.map(lambda n: f"attributes.{n}"), value.map(lambda v: {"equals": v})),
        st.tuples(name.map(lambda n: f"attributes.{n}"), value.map(lambda v: {"in": [v, "2"]})),
        st.tuples(
            st.just("attributes.labels.sev"),
            st.sampled_from([["page", "1"], {"equals": "v"}, {"in": ["v", "2"], "regex": "."}]),
        ),
    )


@st.composite
def rule(draw: st.DrawFn, i: int) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for field, values, pattern in (
        ("type", TYPES, {"glob": "d.*"}),
        ("host", HOSTS, {"regex": "^(lab|test)-"}),
        ("source", SOURCES, {"glob": "webhook:*"}),
    ):
        if draw(st.booleans()):
            match[field] = draw(_field_pin(values, pattern))
    for path, cond in draw(st.lists(_attribute_condition(), max_size=2)):
        match[path] = cond
    if draw(st.integers(0, 4)) == 0:
        match["not"] = {"type": draw(st.sampled_from(TYPES))}
    actions = draw(
        st.sampled_from(
            [
                {"drop": True},
                {"set": {f"attributes.{draw(st.sampled_from(ATTRS))}": "v"}},
                {"set": {"attributes.labels.sev": "page"}},
                {"classify": {"category": "net", "severity": "major"}},
                {"rename": draw(st.sampled_from(TYPES))},
                {"set": {"host": draw(st.sampled_from(HOSTS))}},
                {"set": {"attributes.level": "debug"}, "stop": True},
                {"inventory": True},
                {"inventory": {"fields": ["site"]}},
                {"dedup": "5m"},
                {"rate_limit": {"max": 1, "per": "1m"}},
                {"set": {"resource": "{attributes.x|r}"}, "classify": {"severity": "minor"}, "dedup": "5m"},
                {"rename": draw(st.sampled_from(TYPES)), "dedup": {"window": "5m", "key": "{host}"}},
                {"set": {"attributes.x": "v"}, "rate_limit": {"max": 1, "per": "1m"}},
                {"classify": {"category": "n"}, "rate_limit": {"max": 1, "per": "1m"}, "dedup": "1m"},
                {"drop": True, "set": {"resource": "x"}, "dedup": "5m"},
                {"inventory": True, "set": {"attributes.x": "v"}, "rate_limit": {"max": 1, "per": "1m"}},
            ]
        )
    )
    return {"name": f"r{i}", "match": match, **actions}


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 10))
    return [draw(rule(i)) for i in range(n)]


def events() -> st.SearchStrategy[Event]:
    attrs = st.dictionaries(
        st.sampled_from(ATTRS),
        st.one_of(st.sampled_from(["debug", "v", "par1", "1", ""]), st.integers(0, 2), st.none()),
        max_size=3,
    )
    labels = st.one_of(st.sampled_from(["page", "v", "1", 1, 2, None]).map(lambda v: {"sev": v}), st.just({}))
    attrs = st.tuples(attrs, labels).map(
        lambda p: {**p[0], "labels": p[1]} if p[0].get("labels") == "v" else p[0]
    )
    return st.builds(
        lambda t, h, s, sev, a, dt: Event("e", 1000.0 + dt, 1000.0, s, h, t, Severity(sev), "r", "", a),
        st.sampled_from([*TYPES, "zzz"]),
        st.sampled_from(HOSTS),
        st.sampled_from(SOURCES),
        st.sampled_from(["info", "major", "clear"]),
        attrs,
        st.integers(0, 30),
    )


def _build(rules: list[dict[str, Any]]) -> RuleSet:
    ctx = BuildContext(Path("."), INVENTORY)
    return RuleSet(
        compile_texts({"r.yaml": orjson.dumps({"rules": rules}).decode()}, ctx), ["r.yaml"], INVENTORY
    )


def _scan(rs: RuleSet, ev: Event, updates: list[Event]) -> str | None:
    """The specification: every rule in order, by its whole match; a removal or a stop ends it."""
    reason = None
    for r in rs.filters:
        try:
            if not r.match(ev):
                continue
            reason = r.run(ev, updates)
        except Exception:
            continue
        if reason is not None or r.stop:
            break
    if reason is None or reason == "duplicate":
        rs.conditions.observe(ev)
    return reason


@settings(max_examples=250, deadline=None)
@given(rule_sets(), st.lists(events(), min_size=1, max_size=12))
def test_the_filter_stage_does_what_a_scan_of_every_rule_does(
    rules: list[dict[str, Any]], evs: list[Event]
) -> None:
    def fresh() -> list[Event]:
        out = sorted(copy.deepcopy(evs), key=lambda e: e.time)
        for n, e in enumerate(out):
            e.id = f"e{n}"
        return out

    slow, slow_in, slow_updates = _build(rules), fresh(), []
    reasons = [_scan(slow, e, slow_updates) for e in slow_in]
    expected = [e for e, reason in zip(slow_in, reasons, strict=True) if reason is None]
    fast, fast_in, fast_updates, fast_folded = _build(rules), fresh(), [], []
    kept = fast.run(fast_in, fast_updates, fast_folded)
    assert [e.to_dict() for e in kept] == [e.to_dict() for e in expected]
    assert [e.to_dict() for e in fast_in] == [e.to_dict() for e in slow_in]  # the removed ones too
    assert [e.id for e in fast_updates] == [e.id for e in slow_updates]
    folded = [e.id for e, reason in zip(slow_in, reasons, strict=True) if reason == "duplicate"]
    assert [e.id for e in fast_folded] == folded
    # one event at a time (`process`, as `rules test` and the API run it) agrees too
    one, single = _build(rules), fresh()
    passed = [e for e in single if one.process(e, []) is None]
    assert [e.to_dict() for e in passed] == [e.to_dict() for e in expected]
