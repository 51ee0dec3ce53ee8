"""The rule index: an event meets only the rules that can match it, always in set order."""

from __future__ import annotations

from tests.unit.rules.helpers import ev, ruleset, run

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


ALERTS = """
rules:
  - name: critical
    match: {source: {glob: "webhook:*"}, attributes.status: firing, attributes.labels.severity: {in: [critical, page]}}
    classify: {severity: critical}
  - name: warning
    match: {source: {glob: "webhook:*"}, attributes.status: firing, attributes.labels.severity: [warning, warn]}
    classify: {severity: warning}
  - name: resolved
    match: {source: {glob: "webhook:*"}, attributes.status: {equals: resolved}}
    classify: {category: app}
  - name: numbered
    match: {attributes.code: {in: ["2", x]}}
    set: {attributes.labels.severity: critical}
  - name: after-labels-written
    match: {attributes.status: firing, attributes.labels.severity: critical}
    set: {attributes.late: true}
"""


def alert(status, severity, **attrs):
    return ev(
        "n1",
        "HighLoad",
        source="webhook:am",
        attributes={"status": status, "labels": {"severity": severity}, **attrs},
    )


def test_attribute_values_are_decided_by_the_index_per_value():
    rs = ruleset(ALERTS)
    # `labels` is written by `numbered`, so the last rule's severity is tested by the rule itself
    assert names(rs, alert("firing", "warning")) == ["warning", "after-labels-written"]
    assert names(rs, alert("firing", "page")) == ["critical", "after-labels-written"]
    assert names(rs, alert("resolved", "page")) == ["resolved"]
    assert names(rs, alert("firing", "none")) == ["after-labels-written"]
    assert names(rs, ev("n1", "HighLoad", source="webhook:am", attributes={"status": 1})) == []
    # a value that is not text is compared as the condition compares it: 2 is "2"
    assert names(rs, alert("firing", "none", code=2)) == ["numbered", "after-labels-written"]
    assert names(rs, alert("firing", "none", code=[2])) == ["after-labels-written"]
    labels_text = ev("n1", "A", source="webhook:am", attributes={"status": "firing", "labels": "critical"})
    assert names(rs, labels_text) == ["after-labels-written"]


def test_a_decided_value_pin_is_not_tested_again_and_the_compiled_rule_is_left_alone():
    rs = ruleset(ALERTS)
    critical = next(r for r in rs.index.candidates(alert("firing", "page")))
    shipped = next(r for r in rs.filters if r.info.name == "critical")
    # the source glob, the status and the severity are all decided: nothing is left to test
    assert critical is not shipped and critical.check is None
    assert shipped.check is not None and shipped.check(alert("firing", "none")) is False
    # partly decided: the status by the index, the severity (labels written before) by the rule
    late = next(
        r for r in rs.index.candidates(alert("firing", "page")) if r.info.name == "after-labels-written"
    )
    assert late.check is not None
    assert late.check(alert("resolved", "critical")) is True
    assert late.check(alert("firing", "page")) is False


def test_alert_values_give_the_same_results_as_every_rule_in_order():
    rs = ruleset(ALERTS)
    for status in ("firing", "resolved", None):
        for sev in ("critical", "warn", "none", 3):
            for code in (2, "x", None):
                a = alert(status, sev, code=code)
                rs.run([a], [])
                b = alert(status, sev, code=code)
                b.id = a.id
                for r in rs.filters:
                    if r.match(b):
                        r.apply(b, [])
                assert a.to_dict() == b.to_dict()


def test_long_attribute_values_are_classified_but_not_kept():
    rs = ruleset(
        """
        rules:
          - name: firing
            match: {attributes.status: firing}
            classify: {severity: major}
        """
    )
    for i in range(50):
        kept, _ = run(rs, ev("sw1", attributes={"status": f"{i}" + "x" * 10_000}))
        assert kept[0].severity != "major"
    kept, _ = run(rs, ev("sw1", attributes={"status": "firing"}))
    assert kept[0].severity == "major"
    assert all(len(v) <= 256 for memo in rs.index._values.values() for v in memo if v is not None)


PRESENCE = """
rules:
  - {name: has-level, match: {attributes.level: {exists: true}}, set: {attributes.l: true}}
  - {name: no-site, match: {attributes.site: {missing: true}}, set: {attributes.s: true}}
  - {name: any, set: {attributes.any: true}}
"""


def test_the_names_present_are_the_same_whatever_their_order_or_number(monkeypatch):
    from correlator.rules import index as mod

    monkeypatch.setattr(mod, "_MEMO_LIMIT", 4)
    monkeypatch.setattr(mod, "_MEMO_NAMES", 3)
    rs = ruleset(PRESENCE)
    cases = [
        ({"level": 1, "x": 2}, ["l", "s", "any"]),
        ({"x": 2, "level": 1}, ["l", "s", "any"]),
        ({"site": "p", "level": 1}, ["l", "any"]),
        ({"a": 1, "b": 2, "c": 3, "level": 1}, ["l", "s", "any"]),  # more names than are remembered
        ({"a": 1, "b": 2, "c": 3, "site": 1}, ["any"]),
        ({}, ["s", "any"]),
    ]
    for _ in range(3):  # the memories fill up and are cleared on the way
        for i, (attrs, expected) in enumerate(cases):
            (kept,), _ = run(rs, ev(f"h{i}", "t", attributes=dict(attrs)))
            assert [k for k in kept.attributes if k not in attrs] == expected
            assert names(rs, ev(f"h{i}", "t", attributes=dict(attrs))) == names(
                ruleset(PRESENCE), ev(f"h{i}", "t", attributes=dict(attrs))
            )
