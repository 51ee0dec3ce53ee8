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
    assert names(rs, ev("sw1", "linkDown")) == ["any-1", "type-down", "type-list", "any-2"]
    assert names(rs, ev("sw9", "linkUp")) == ["any-1", "type-list", "host-sw9", "any-2", "type-up"]
    assert names(rs, ev("s", "other", source="mqtt")) == ["any-1", "source-mqtt", "any-2"]
    assert names(rs, ev("s", "other")) == ["any-1", "any-2"]


def test_index_keys():
    rs = ruleset(RULES)
    keys = {r.info.name: r.index for r in rs.filters}
    assert keys["type-down"] == ("type", frozenset({"linkDown"}))
    assert keys["type-list"] == ("type", frozenset({"linkDown", "linkUp"}))
    assert keys["source-mqtt"] == ("source", frozenset({"mqtt"}))
    assert keys["host-sw9"] == ("host", frozenset({"sw9"}))
    assert keys["any-1"] is None and keys["any-2"] is None


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


def test_the_candidate_cache_is_bounded(monkeypatch):
    from correlator.rules import ruleset as mod

    monkeypatch.setattr(mod, "_CACHE_LIMIT", 10)
    rs = ruleset(RULES)
    for i in range(50):
        rs.index.candidates(ev(f"h{i}", f"t{i}"))
    assert len(rs.index._cache) <= 10


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
