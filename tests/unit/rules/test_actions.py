"""Each level-1 action, their documented order, and that a failing rule never loses an event."""

from __future__ import annotations

from correlator.event import fingerprint
from correlator.inventory import Asset, Inventory
from correlator.rules.stats import STATS
from tests.unit.rules.helpers import ev, ruleset, run

INV = Inventory(
    [Asset("sw1", site="par1", service="core", owner="netops", criticality="high", extra={"rack": "R1"})]
)


def test_drop_removes_and_counts_per_rule():
    rs = ruleset(
        """
        rules:
          - name: drop-lab
            match: {host: {glob: 'lab-*'}}
            drop: true
        """
    )
    before = STATS.counters("drop-lab").dropped["drop"]
    kept, _ = run(rs, ev("lab-1"), ev("sw1"), ev("lab-2"))
    assert [e.host for e in kept] == ["sw1"]
    assert STATS.counters("drop-lab").dropped["drop"] - before == 2
    assert STATS.counters("drop-lab").matches >= 2


def test_inventory_copies_fields_without_overwriting():
    rs = ruleset("rules: [{name: inv, match: {}, inventory: true}]", INV)
    e = ev("sw1", attributes={"site": "kept"})
    run(rs, e, ev("unknown-host"))
    assert e.attributes == {
        "site": "kept",
        "service": "core",
        "owner": "netops",
        "criticality": "high",
        "rack": "R1",
    }


def test_inventory_options_key_fields_overwrite():
    rs = ruleset(
        """
        rules:
          - name: inv
            inventory: {key: "{attributes.device}", fields: [site, rack], overwrite: true}
        """,
        INV,
    )
    e = ev("10.0.0.1", attributes={"device": "sw1", "site": "old"})
    run(rs, e)
    assert e.attributes == {"device": "sw1", "site": "par1", "rack": "R1"}


def test_set_renders_templates_in_order_and_keeps_types():
    rs = ruleset(
        """
        rules:
          - name: set
            set:
              resource: "{attributes.ifDescr}"
              message: "{host}:{resource} down"
              attributes.index: "{attributes.ifIndex}"
              attributes.flag: true
              attributes.labels.team: net
        """
    )
    e = ev("sw1", attributes={"ifDescr": "Gi0/1", "ifIndex": 4})
    run(rs, e)
    assert e.resource == "Gi0/1"
    assert e.message == "sw1:Gi0/1 down"
    assert e.attributes["index"] == 4
    assert e.attributes["flag"] is True
    assert e.attributes["labels"] == {"team": "net"}


def test_changing_identity_fields_recomputes_a_default_fingerprint_only():
    rs = ruleset("rules: [{name: r, match: {}, rename: 'net.{type}', set: {resource: x}}]")
    plain = ev("sw1", "linkDown")
    custom = ev("sw1", "linkDown", fingerprint="from-alertmanager")
    run(rs, plain, custom)
    assert plain.type == "net.linkDown"
    assert plain.fingerprint == fingerprint("sw1", "x", "net.linkDown")
    assert custom.fingerprint == "from-alertmanager"


def test_an_identity_rule_that_changes_nothing_keeps_the_fingerprint():
    rs = ruleset("rules: [{name: r, match: {}, set: {host: '{host}', resource: '{resource}'}}]")
    plain = ev("sw1", "linkDown", resource="Gi0/1")
    custom = ev("sw1", "linkDown", fingerprint="chosen")
    run(rs, plain, custom)
    assert plain.fingerprint == fingerprint("sw1", "Gi0/1", "linkDown")
    assert custom.fingerprint == "chosen"


def test_a_constant_classify_severity_is_any_case_of_a_severity_name():
    rs = ruleset("rules: [{name: c, match: {}, classify: {severity: Critical}}]")
    a, b = ev(), ev()
    run(rs, a, b)
    assert a.severity.value == b.severity.value == "critical"


def test_classify_sets_severity_and_category():
    rs = ruleset(
        """
        rules:
          - name: c1
            match: {type: a}
            classify: {severity: major, category: network}
          - name: c2
            match: {type: b}
            classify: {severity: "{attributes.labels.severity}"}
        """
    )
    a, b = ev(type="a"), ev(type="b", attributes={"labels": {"severity": "critical"}})
    run(rs, a, b)
    assert (a.severity.value, a.attributes["category"]) == ("major", "network")
    assert b.severity.value == "critical"


def test_a_template_giving_no_severity_is_counted_and_the_event_kept():
    rs = ruleset("rules: [{name: bad-sev, classify: {severity: '{attributes.s}'}}]")
    before = STATS.counters("bad-sev").errors
    e = ev(attributes={"s": "disaster"})
    kept, _ = run(rs, e)
    assert kept == [e] and e.severity.value == "info"
    assert STATS.counters("bad-sev").errors == before + 1


def test_rename():
    rs = ruleset("rules: [{name: r, match: {type: old}, rename: 'new.{host}'}]")
    e = ev("h", "old")
    run(rs, e)
    assert e.type == "new.h"


def test_dedup_folds_repeats_into_the_first_event():
    rs = ruleset("rules: [{name: d, dedup: {window: 5m}}]")
    first = ev("sw1", "down", time=0.0)
    second = ev("sw1", "down", time=60.0)
    third = ev("sw1", "down", time=120.0)
    other = ev("sw2", "down", time=130.0)
    kept, updates = run(rs, first, second, third, other)
    assert kept == [first, other]
    assert (first.count, first.time, first.last_seen) == (3, 0.0, 120.0)
    assert updates == [first, first]


def test_dedup_window_is_counted_from_the_first_occurrence():
    rs = ruleset("rules: [{name: d, dedup: 5m}]")
    events = [ev("sw1", "down", time=t) for t in (0.0, 200.0, 299.0, 300.0, 400.0)]
    kept, _ = run(rs, *events)
    assert [(e.time, e.count) for e in kept] == [(0.0, 3), (300.0, 2)]


def test_dedup_never_folds_a_severity_change():
    rs = ruleset("rules: [{name: d, dedup: 5m}]")
    a = ev("sw1", "alert", severity="major", time=0.0)
    b = ev("sw1", "alert", severity="clear", time=10.0)
    kept, _ = run(rs, a, b)
    assert kept == [a, b]


def test_dedup_burst_ends_when_another_condition_occurs_on_the_resource():
    # linkDown, linkUp, linkDown within the window is three transitions (flapping), not a repeat.
    rs = ruleset("rules: [{name: d, dedup: 10m}]")
    down1 = ev("sw1", "linkDown", severity="major", time=0.0, resource="Gi0/1")
    down2 = ev("sw1", "linkDown", severity="major", time=5.0, resource="Gi0/1")
    up = ev("sw1", "linkUp", severity="clear", time=10.0, resource="Gi0/1")
    down3 = ev("sw1", "linkDown", severity="major", time=20.0, resource="Gi0/1")
    other_port = ev("sw1", "linkUp", severity="clear", time=25.0, resource="Gi0/2")
    down4 = ev("sw1", "linkDown", severity="major", time=30.0, resource="Gi0/1")
    kept, _ = run(rs, down1, down2, up, down3, other_port, down4)
    assert kept == [down1, up, down3, other_port]
    assert (down1.count, down3.count) == (2, 2)  # another port's event does not end Gi0/1's burst


def test_dedup_key_template():
    rs = ruleset("rules: [{name: d, dedup: {window: 1h, key: '{host}'}}]")
    kept, _ = run(rs, ev("sw1", "a", time=0.0), ev("sw1", "b", time=1.0), ev("sw2", "a", time=2.0))
    assert [(e.host, e.type, e.count) for e in kept] == [("sw1", "a", 2), ("sw2", "a", 1)]


def test_rate_limit_per_key_and_window():
    rs = ruleset("rules: [{name: rl, rate_limit: {key: '{host}', max: 2, per: 1m}}]")
    before = STATS.counters("rl").dropped["rate_limit"]
    events = [ev("a", time=t) for t in (0, 1, 2, 3)] + [ev("b", time=4)] + [ev("a", time=61)]
    kept, _ = run(rs, *events)
    assert [(e.host, e.time) for e in kept] == [("a", 0), ("a", 1), ("b", 4), ("a", 61)]
    assert STATS.counters("rl").dropped["rate_limit"] - before == 2


def test_stop_ends_rule_evaluation():
    rs = ruleset(
        """
        rules:
          - {name: first, match: {host: sw1}, set: {message: one}, stop: true}
          - {name: second, set: {message: two}}
        """
    )
    a, b = ev("sw1"), ev("sw2")
    run(rs, a, b)
    assert (a.message, b.message) == ("one", "two")


def test_actions_run_in_the_documented_order():
    # inventory -> set -> classify -> rename -> rate_limit -> dedup, whatever order they are written in
    rs = ruleset(
        """
        rules:
          - name: all
            dedup: 1m
            rename: "{type}.{attributes.site}"
            classify: {category: "{attributes.tag}"}
            set: {attributes.tag: "site-{attributes.site}"}
            inventory: true
        """,
        INV,
    )
    e = ev("sw1", "down")
    run(rs, e)
    assert e.attributes["tag"] == "site-par1"
    assert e.attributes["category"] == "site-par1"
    assert e.type == "down.par1"


def test_drop_comes_before_everything():
    rs = ruleset("rules: [{name: d, drop: true, set: {message: changed}}]")
    e = ev()
    kept, _ = run(rs, e)
    assert kept == [] and e.message == ""


def test_later_rules_see_earlier_changes():
    rs = ruleset(
        """
        rules:
          - {name: a, match: {type: x}, rename: y}
          - {name: b, match: {type: y}, drop: true}
        """
    )
    kept, _ = run(rs, ev(type="x"))
    assert kept == []


def test_a_rule_that_raises_is_skipped_and_the_event_kept(monkeypatch):
    rs = ruleset(
        """
        rules:
          - {name: boom, set: {message: x}}
          - {name: after, set: {resource: r}}
        """
    )

    def explode(ev, updates):
        raise RuntimeError("bug")

    boom = rs.filters[0]
    monkeypatch.setattr(boom, "steps", (explode,))
    monkeypatch.setattr(boom, "act", explode)  # what the rule set calls: the steps as one
    e = ev()
    kept, _ = run(rs, e)
    assert kept == [e] and e.resource == "r"
    assert STATS.counters("boom").errors >= 1


def test_state_survives_a_reload_when_the_settings_are_unchanged():
    text = "rules: [{name: d, dedup: 5m}]"
    old = ruleset(text)
    first = ev("sw1", "down", time=0.0)
    run(old, first)
    new = ruleset(text)
    new.adopt_state(old)
    kept, updates = run(new, ev("sw1", "down", time=10.0))
    assert kept == [] and updates == [first] and first.count == 2
    changed = ruleset("rules: [{name: d, dedup: 1m}]")
    changed.adopt_state(new)
    kept, _ = run(changed, ev("sw1", "down", time=20.0))
    assert len(kept) == 1


def test_dedup_and_rate_limit_state_expires_with_event_time():
    rs = ruleset(
        """
        rules:
          - {name: d, match: {type: a}, dedup: 1m}
          - {name: rl, match: {type: b}, rate_limit: {max: 1, per: 1m}}
        """
    )
    run(rs, *[ev(f"h{i}", "a", time=float(i)) for i in range(50)])
    run(rs, *[ev(f"h{i}", "b", time=float(i)) for i in range(50)])
    run(rs, ev("late", "a", time=500.0), ev("late", "b", time=500.0))
    dedup, limiter = rs.filters[0].stateful["dedup"], rs.filters[1].stateful["rate_limit"]
    assert len(dedup.state) == 1
    assert list(limiter.state) == ["late"]


def test_drop_and_inventory_still_run_before_changes_and_a_dedup():
    """A rule's changes and its dedup or rate limit run as one call: the steps before them (drop,
    inventory) must not be left out of it."""
    rs = ruleset(
        """
        rules:
          - name: drop-and-fold
            match: {host: {glob: 'lab-*'}}
            drop: true
            set: {resource: x}
            dedup: 5m
          - name: enrich-and-limit
            match: {host: sw1}
            inventory: true
            set: {attributes.seen: "yes"}
            rate_limit: {max: 5, per: 1m}
        """,
        inventory=INV,
    )
    kept, _ = run(rs, ev("lab-1"), ev("sw1"))
    assert [e.host for e in kept] == ["sw1"]
    assert kept[0].attributes["site"] == "par1" and kept[0].attributes["seen"] == "yes"
