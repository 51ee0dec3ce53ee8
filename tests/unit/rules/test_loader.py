"""The rule compiler and `rules check`: every kind of mistake gives file:line:column and a clear message."""

from __future__ import annotations

import textwrap

import pytest

from correlator.rules.errors import RuleErrors
from correlator.rules.loader import ParsedRule, build_again, load_rules, rule_files
from correlator.rules.model import Duration, Key, Obj
from correlator.rules.registry import RuleKind, kinds, register_kind
from tests.unit.rules.helpers import ruleset


def errors_of(text: str) -> list[str]:
    with pytest.raises(RuleErrors) as info:
        ruleset(text)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - name: a\n    drop: [unclosed\n", "r.yaml:4:1: YAML syntax error"),
        ("rules:\n  - name: a\n    dorp: true\n", "r.yaml:3:5: unknown key 'dorp' (did you mean 'drop'?)"),
        (
            "rules:\n  - name: a\n    drop: yes please\n",
            "r.yaml:3:11: drop: expected true or false, got str 'yes please'",
        ),
        (
            "rules:\n  - name: a\n    dedup: {window: 5 minutes}\n",
            "r.yaml:3:21: dedup: window: expected a duration like '30s'",
        ),
        ("rules:\n  - name: a\n    dedup: soon\n", "r.yaml:3:12: dedup: expected a duration like"),
        (
            "rules:\n  - name: a\n    rate_limit: {max: 0, per: 1m}\n",
            "expected a whole number >= 1, got int 0",
        ),
        ("rules:\n  - name: a\n    rate_limit: {max: 5}\n", "missing required key 'per'"),
        (
            "rules:\n  - name: a\n    match: {host: {regex: '[a-'}}\n",
            "r.yaml:3:27: match: host: invalid regex '[a-'",
        ),
        (
            "rules:\n  - name: a\n    set: {message: '{hots}'}\n",
            "r.yaml:3:20: set: unknown field 'hots' (did you mean 'host'?)",
        ),
        ("rules:\n  - name: a\n    set: {id: x}\n", "field 'id' cannot be changed by a rule"),
        ("rules:\n  - name: a\n    rename: '{type'\n", "never closed"),
        ("rules:\n  - name: a\n    classify: {severity: huge}\n", "r.yaml:3:26: severity must be one of"),
        ("rules:\n  - name: a\n    match: {}\n", "rule 'a' has no action"),
        ("rules:\n  - drop: true\n", "r.yaml:2:5: missing required key 'name'"),
        ("rules:\n  - name: a\n    kind: tresholdd\n", "unknown rule kind 'tresholdd'"),
        (
            "rules:\n  - name: a\n    drop: true\n  - name: a\n    drop: true\n",
            "r.yaml:4:5: duplicate rule name 'a' (first defined at r.yaml:2:5)",
        ),
        ("rule:\n  - name: a\n", "r.yaml:1:1: unknown top-level key 'rule' (did you mean 'rules'?)"),
        ("rules: {name: a}\n", "'rules' must be a list"),
        ("- name: a\n", "a rule file must be a mapping"),
        ("rules:\n  - just a string\n", "each rule must be a mapping"),
        ("rules:\n  - name: a\n    inventory: {fields: [sight]}\n", "inventory: unknown column 'sight'"),
    ],
)
def test_error_messages(text, expected):
    errs = errors_of(text)
    assert any(expected in e for e in errs), errs


def test_an_integer_too_long_for_python_is_a_rule_error_with_its_place(tmp_path):
    huge = "9" * 5_000  # int() refuses more than 4,300 digits with a bare ValueError
    text = f"rules:\n  - name: a\n    drop: true\n  - name: b\n    rate_limit: {{max: {huge}, per: 1m}}\n"
    assert errors_of(text) == ["r.yaml:5:23: integer of 5000 digits is too large"]
    (tmp_path / "big.yaml").write_text(text)
    with pytest.raises(RuleErrors) as info:
        load_rules(tmp_path)
    assert [str(e) for e in info.value.errors] == [
        f"{tmp_path / 'big.yaml'}:5:23: integer of 5000 digits is too large"
    ]


def test_all_errors_of_all_rules_are_listed_in_file_order():
    errs = errors_of(
        """
        rules:
          - name: one
            dorp: true
          - name: two
            match: {hots: x}
            drop: true
          - name: three
            dedup: forever
        """
    )
    assert [e.split(": ")[0] for e in errs] == ["r.yaml:4:5", "r.yaml:6:13", "r.yaml:9:12"]


def test_disabled_rules_are_checked_but_not_loaded():
    rs = ruleset("rules: [{name: disabled, enabled: false, drop: true}, {name: active, drop: true}]")
    assert [r.info.name for r in rs.rules] == ["active"]
    assert errors_of("rules: [{name: disabled, enabled: false, dorp: true}]")


def test_empty_files_and_lists_are_fine():
    assert ruleset("").rules == []
    assert ruleset("rules: []").rules == []
    assert ruleset("rules:").rules == []


def test_directory_loading_order_and_skips(tmp_path):
    (tmp_path / "b.yaml").write_text("rules: [{name: b, drop: true}]")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yml").write_text("rules: [{name: sub-a, drop: true}]")
    (tmp_path / "a.yaml").write_text("rules: [{name: a, drop: true}]")
    (tmp_path / "a_test.yaml").write_text("tests: []")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("broken: [")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in rule_files(tmp_path)] == ["a.yaml", "b.yaml", "a.yml"]
    rs = load_rules(tmp_path)
    assert [r.info.name for r in rs.rules] == ["a", "b", "sub-a"]
    assert [r.info.order for r in rs.rules] == [0, 1, 2]


def test_duplicate_names_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text("rules: [{name: same, drop: true}]")
    (tmp_path / "b.yaml").write_text("rules:\n  - name: same\n    drop: true\n")
    with pytest.raises(
        RuleErrors, match=r"b.yaml:2:5: duplicate rule name 'same' \(first defined at .*a.yaml:1:10\)"
    ):
        load_rules(tmp_path)


def test_missing_directory_is_an_error_for_load_rules(tmp_path):
    with pytest.raises(RuleErrors, match="does not exist"):
        load_rules(tmp_path / "nope")


def test_a_registered_kind_parses_with_positions_and_builds():
    built = []

    def build(info, values, raw, ctx):
        built.append((info.name, info.kind, values["within"]))
        return ("compiled", info.name)

    register_kind(RuleKind("example", Obj({"within": Key(Duration(), required=True)}), build, level=2))
    try:
        rs = ruleset("rules: [{name: x, kind: example, within: 5m}, {name: y, drop: true}]")
        assert built == [("x", "example", 300.0)]
        assert rs.of_kind("example") == [("compiled", "x")]
        assert [r.info.name for r in rs.filters] == ["y"]
        errs = errors_of("rules:\n  - name: x\n    kind: example\n    within: later\n")
        assert any(e.startswith("r.yaml:4:13: within: expected a duration") for e in errs), errs
    finally:
        from correlator.rules import registry

        registry._KINDS.pop("example", None)
    assert "example" not in kinds()


def test_check_of_the_shipped_rules_passes():
    from pathlib import Path

    rs = load_rules(Path(__file__).resolve().parents[3] / "rules")
    assert len(rs.filters) >= 15
    assert textwrap  # keep import used


def test_build_again_makes_new_rule_objects_for_everything_with_state(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "rules:\n"
        "  - {name: plain, match: {type: x}, drop: true}\n"
        "  - {name: dormant, enabled: false, drop: true}\n"
        "  - {name: folds, match: {type: y}, dedup: 1m}\n"
        "  - {name: cpu, kind: threshold, match: {type: cpu}, count: 2, within: 1h}\n"
    )
    parsed: list[ParsedRule] = []
    first = load_rules(tmp_path, parsed=parsed)
    again = build_again(first, parsed)
    assert [(r.info.name, r.info.order) for r in again.rules] == [("plain", 0), ("folds", 2), ("cpu", 3)]
    assert [r.info for r in again.rules] == [r.info for r in first.rules]
    plain, folds, cpu = (a.compiled is b.compiled for a, b in zip(first.rules, again.rules, strict=True))
    assert plain and not folds and not cpu  # only what holds no state is shared
    assert again.filters[1].stateful["dedup"] is not first.filters[1].stateful["dedup"]
