"""The rule index: an event meets only the rules that can match it, always in set order."""

from __future__ import annotations

from tests.unit.rules.helpers import ev, ruleset

RULES = """
rules:
  - {name: any-1, set: {attributes.seen_any1: true}}
  - {name: type-down, match: {type: linkDown}, set: {attributes.down: true}}
  - {name: type-list, match: {type: [linkDown, linkUp]}, set: {attributes.list: true}}
  - {name: source-mqtt, match: {source: {equals: mqtt}}, set: {attributes.mqtt: true}}
  - {name: host-sw9, match: {host: {in: [sw9]}}, set: {attributes.sw9: true}}
  - {name: any-2, match: {host: {regex: x}}, set: {attributes.any2: true}}
  - {name: type-up, match: {type: linkUp}, set: {attributes.up: true}}
"""


def names(rs, e):
    return [r.info.name for r in rs.index.candidates(e)]


def test_candidates_are_the_pinned_rules_plus_the_unpinned_in_order():
    rs = ruleset(RULES)
    assert names(rs, ev("sw1", "linkDown")) == ["any-1", "type-down", "type-list"]
    assert names(rs, ev("sw9", "linkUp")) == ["any-1", "type-list", "host-sw9", "type-up"]
    assert names(rs, ev("s", "other", source="mqtt")) == ["any-1", "source-mqtt"]
    assert names(rs, ev("s", "other")) == ["any-1"]
    # the host regex is decided by the index too, once per host
    assert names(rs, ev("x1", "linkUp")) == ["any-1", "type-list", "any-2", "type-up"]


def test_index_pins():
    rs = ruleset(RULES)
    pins = {r.info.name: [(p.field, p.values, p.test is None) for p in r.pins] for r in rs.filters}
    assert pins["type-down"] == [("type", frozenset({"linkDown"}), True)]
    assert pins["type-list"] == [("type", frozenset({"linkDown", "linkUp"}), True)]
    assert pins["source-mqtt"] == [("source", frozenset({"mqtt"}), True)]
    assert pins["host-sw9"] == [("host", frozenset({"sw9"}), True)]
    assert pins["any-2"] == [("host", None, False)]  # a regex: asked once per distinct host
    assert pins["any-1"] == []


def test_indexed_and_unindexed_evaluation_agree():
    rs = ruleset(RULES)
    for host, type_, source in [("sw1", "linkDown", "snmp"), ("sw9", "linkUp", "mqtt"), ("x", "linkUp", "a")]:
        a = ev(host, type_, source=source)
        rs.run([a], [])
        expected = {}
        for r in rs.filters:  # brute force: every rule, in order
            b = ev(host, type_, source=source)
            b.attributes = dict(expected)
            if r.match(b):
                r.apply(b, [])
            expected = b.attributes
        assert a.attributes == expected


def test_the_candidate_cache_and_the_remembered_values_are_bounded(monkeypatch):
    from correlator.rules import index as mod

    monkeypatch.setattr(mod, "_CACHE_LIMIT", 10)
    monkeypatch.setattr(mod, "_MEMO_LIMIT", 10)
    rs = ruleset(RULES)
    for i in range(50):
        attrs = {f"a{j}": 1 for j in range(i % 7)} | ({"level": "x"} if i % 2 else {})
        assert names(rs, ev(f"h{i}x", f"t{i}", attributes=attrs)) == ["any-1", "any-2"]
    assert len(rs.index.cached) <= 10
    assert all(len(m) <= 10 for m in rs.index._memo.values())
    # values no rule tells apart share one class: hosts by the thousand make one candidate list
    rs = ruleset(RULES)
    for i in range(50):
        rs.index.candidates(ev(f"h{i}", "linkDown"))
    assert len(rs.index.cached) == 1


def test_glob_pins_on_type_and_source_are_indexed():
    rs = ruleset(
        """
        rules:
          - {name: webhooks, match: {source: {glob: "webhook:*"}}, set: {attributes.w: true}}
          - {name: telemetry, match: {type: {glob: "telemetry.*"}}, set: {attributes.t: true}}
          - {name: everything, set: {attributes.e: true}}
        """
    )
    assert names(rs, ev("h", "telemetry.temp", source="mqtt:x")) == ["telemetry", "everything"]
    assert names(rs, ev("h", "x", source="webhook:am")) == ["webhooks", "everything"]
    assert names(rs, ev("h", "x", source="snmp")) == ["everything"]
    e = ev("h", "telemetry.temp", source="webhook:am")
    rs.run([e], [])
    assert e.attributes == {"w": True, "t": True, "e": True}


def test_a_rule_that_fails_after_changing_the_type_leaves_no_stale_candidates():
    """The set action renames the type, then fails on the severity: the rules after it are those
    of the new type, so the one pinned to the old type must not drop the event."""
    rs = ruleset(
        """
        rules:
          - {name: rename, match: {type: old}, set: {type: new, severity: "{attributes.level}"}}
          - {name: old-only, match: {type: old, host: h}, drop: true}
        """
    )
    e = ev(host="h", type="old", attributes={"level": "bogus"})
    updates: list = []
    assert rs.run([e], updates) == [e]
    assert e.type == "new"
