"""Level-2 rules in the rule files: every kind compiles, errors point at file:line:col, the schema
validates them, and a reload keeps the state of rules it leaves unchanged."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator import yamlfile
from correlator.correlation.absence import Absence
from correlator.correlation.core import Engine
from correlator.correlation.pair import Pair
from correlator.correlation.rulespec import key_fn
from correlator.correlation.stage import Correlate
from correlator.inventory import Asset, Inventory
from correlator.rules.errors import RuleErrors
from correlator.rules.fields import compile_field
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext
from correlator.rules.reload import RulesHolder
from correlator.rules.schema import rules_schema

from .support import E, Run

ALL_KINDS = """
rules:
  - name: th
    kind: threshold
    match: {type: auth}
    count: 3
    within: 1m
    on_fire:
      - emit: {type: auth.storm, severity: major, message: "{host} storm"}
      - notify: {target: noc}
  - name: pr
    kind: pair
    match: {type: linkDown}
    close: {type: {in: [linkUp, linkReset]}}
    group_by: [host, resource]
    within: 30s
    on_timeout:
      - incident: {action: open, title: "{host} down", impact: 2, urgency: 1, assignment_group: netops}
    on_close:
      - annotate: {blip: "yes"}
  - name: hb
    kind: absence
    match: {type: heartbeat}
    every: 5m
    expect: [r9, [r8]]
    expect_inventory: true
  - name: fl
    kind: flapping
    match: {type: bgp}
    state: attributes.state
    within: 15m
    high: 4
    on_start: [{suppress: true}]
  - name: gr
    kind: group
    match: {host: {glob: "sw*"}}
    group_by: [attributes.site]
    group_wait: 30s
  - name: sq
    kind: sequence
    steps: [{type: a}, {type: b}, {type: c}]
    within: 5m
    on_complete: [{emit: {type: abc}}]
    on_timeout: [{incident: {action: open, title: "{host}: no {attributes.correlation.missing}"}}]
  - name: tp
    kind: topology
    topology: ../topology.yaml
    down: {type: nodeDown}
    up: {type: nodeUp}
"""


def compile_rules(text: str, tmp_path: Path) -> list[Engine]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (tmp_path / "topology.yaml").write_text("cis:\n  core: {}\n  sw1: {parents: [core]}\n")
    ctx = BuildContext(rules_dir, Inventory([Asset("r1"), Asset("r2")]))
    return [r.compiled for r in compile_texts({"r.yaml": textwrap.dedent(text)}, ctx)]


def errors_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(RuleErrors) as e:
        compile_rules(text, tmp_path)
    return [str(x) for x in e.value.errors]


def test_every_kind_compiles_with_its_index_types(tmp_path: Path) -> None:
    engines = compile_rules(ALL_KINDS, tmp_path)
    assert [e.kind for e in engines] == [
        "threshold",
        "pair",
        "absence",
        "flapping",
        "group",
        "sequence",
        "topology",
    ]
    assert [e.types for e in engines] == [
        frozenset({"auth"}),
        frozenset({"linkDown", "linkUp", "linkReset"}),
        frozenset({"heartbeat"}),
        frozenset({"bgp"}),
        None,
        frozenset({"a", "b", "c"}),
        None,  # topology: without `symptoms:` any problem event (warning and above) may be a symptom
    ]
    hb = engines[2]
    assert isinstance(hb, Absence) and hb.expect == {("r9",), ("r8",), ("r1",), ("r2",)}


async def test_compiled_rules_behave(tmp_path: Path) -> None:
    engines = compile_rules(ALL_KINDS, tmp_path)
    run = Run(*engines)
    out = await run.feed(
        E(0, "auth"),
        E(1, "auth"),
        E(2, "auth"),
        E(3, "linkDown", resource="ge1"),
        E(10, "linkUp", resource="ge1"),
    )
    assert [e.type for e in out] == ["auth", "auth", "auth", "auth.storm", "linkDown", "linkUp"]
    assert out[3].message == "r1 storm"
    assert out[-1].attributes["blip"] == "yes"
    assert [type(r).__name__ for r in run.take_responses()] == ["NotifyRequest"]


async def test_a_topology_rule_from_a_file_names_the_ci_by_host(tmp_path: Path) -> None:
    [tp] = [e for e in compile_rules(ALL_KINDS, tmp_path) if e.kind == "topology"]
    run = Run(tp)
    out = await run.feed(E(0, "nodeDown", host="core"), E(1, "nodeDown", host="sw1"))
    assert out[1].attributes["root_cause"] == "core"
    assert [(r.action, r.key) for r in run.take_responses()] == [("open", "tp:core"), ("update", "tp:core")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("within: 5x", "r.yaml:6:13: within: expected a duration like '30s'"),
        ("on_timout: [{suppress: true}]", "r.yaml:6:5: unknown key 'on_timout' (did you mean 'on_timeout'?)"),
        (
            "on_timeout: [{incidnet: {action: open}}]",
            "unknown response 'incidnet' (did you mean 'incident'?)",
        ),
        ("on_timeout: [{incident: {action: opne}}]", "expected one of open, update, resolve, got 'opne'"),
        ("on_timeout: [{emit: {type: x, severity: bad}}]", "expected one of critical, major"),
        ("on_timeout: [{incident: {action: open, impact: 5}}]", "impact: expected 1 (high), 2 or 3 (low)"),
        ("on_timeout: [{emit: {type: x, message: '{host'}}]", "is never closed"),
    ],
)
def test_errors_say_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    rule = f"""
    rules:
      - name: p
        kind: pair
        match: {{type: a}}
        {text}
        close: {{type: b}}
    """
    if "within" not in text:
        rule = rule.replace("close:", "within: 30s\n    close:")
    errs = errors_of(rule, tmp_path)
    assert any(message in e for e in errs), errs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "on_timeout: [{incidnet: {action: open}}]",
            "r.yaml:6:19: on_timeout: unknown response 'incidnet' (did you mean 'incident'?)",
        ),
        ("on_timeout: []", "r.yaml:6:17: on_timeout: expected a list of responses"),
        ("on_timeout: {incident: {action: open}}", "r.yaml:6:17: on_timeout: expected a list of responses"),
        ("on_timout: [{suppress: true}]", "r.yaml:6:5: unknown key 'on_timout' (did you mean 'on_timeout'?)"),
        ("on_timeout: [{emit: {type: x, message: '{host'}}]", "r.yaml:6:44: on_timeout: message: template"),
        ("timeout_type: x.late", "r.yaml:6:5: timeout_type is for the timeout event: it needs on_timeout"),
        ("severity: major", "r.yaml:6:5: severity is for the timeout event: it needs on_timeout"),
        ("severity: fatal", "r.yaml:6:15: severity: expected one of critical, major"),
    ],
)
def test_sequence_timeout_errors_say_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    head = "rules:\n  - name: s\n    kind: sequence\n    steps: [{type: a}, {type: b}]\n    within: 5m\n"
    errs = errors_of(f"{head}    {text}\n", tmp_path)
    assert any(e.startswith(message) for e in errs), errs


def test_kind_specific_checks(tmp_path: Path) -> None:
    head = "rules:\n  - name: r\n    match: {type: a}\n"
    flap = head + "    kind: flapping\n    within: 1m\n    high: 4\n    low: 4\n"
    assert "low (4) must be below high (4)" in errors_of(flap, tmp_path)[0]
    topo = "rules:\n  - name: t\n    kind: topology\n    topology: nope.yaml\n    down: {}\n    up: {}\n"
    assert "r.yaml:4:15: topology:" in errors_of(topo, tmp_path)[0]
    inv = head + "    kind: absence\n    group_by: [site]\n    every: 1m\n    expect_inventory: true\n"
    assert "expect_inventory needs group_by: [host]" in errors_of(inv, tmp_path)[0]


def test_the_json_schema_accepts_every_kind_and_rejects_mistakes() -> None:
    schema = rules_schema()
    jsonschema.validate(yamlfile.loads(ALL_KINDS, "r.yaml"), schema)
    text = "rules:\n  - {name: p, kind: pair, match: {}, close: {}, within: 1m, on_open: [{shout: {}}]}\n"
    bad = yamlfile.loads(text, "r.yaml")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


async def test_reload_keeps_state_of_unchanged_rules_and_resets_changed_ones(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    pair = "  - name: p\n    kind: pair\n    match: {type: down}\n    close: {type: up}\n    within: %s\n"
    other = "  - name: o\n    kind: threshold\n    match: {type: x}\n    count: %d\n    within: 1m\n"
    (rules_dir / "r.yaml").write_text("rules:\n" + pair % "30s" + other % 2)
    holder = RulesHolder(rules_dir)
    holder.load_initial()
    run = Run()
    run.stage = Correlate([], rules=holder)
    run.pipeline.stages = [run.stage]
    await run.feed(E(0, "down"))
    (rules_dir / "r.yaml").write_text("rules:\n" + pair % "30s" + other % 3)
    holder.reload_now("test")
    await run.feed(E(1, "tick"))
    [p] = [e for e in run.stage.engines if isinstance(e, Pair)]
    assert p.keys() == 1  # unchanged rule: the pending pair survived the reload
    (rules_dir / "r.yaml").write_text("rules:\n" + pair % "40s")
    holder.reload_now("test")
    run.stage.sync()  # what the next batch or tick does first
    out = await run.advance(100)
    assert out == []  # changed rule starts empty, and the old engine's timer is dead
    assert [e.name for e in run.stage.engines] == ["p"]


async def test_explain_describes_the_state_of_every_kind(tmp_path: Path) -> None:
    from correlator.config import Config
    from correlator.rules.explain import EventTrace, explain

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (tmp_path / "topology.yaml").write_text("cis:\n  core: {}\n")
    (rules_dir / "r.yaml").write_text(textwrap.dedent(ALL_KINDS))
    holder = RulesHolder(rules_dir)
    holder.load_initial()
    types = ("auth", "linkDown", "heartbeat", "bgp", "a", "nodeDown")
    events = [E(0, t, host="sw1" if t == "a" else "core", state="up") for t in types]
    trace = await explain(holder, Config(), events)
    reached = [r for item in trace.timeline if isinstance(item, EventTrace) for r in item.level2]
    assert [r.rule for r in reached] == ["th", "pr", "hb", "fl", "gr", "sq", "tp"]
    for r in reached:
        kind = holder.current.get(r.rule).info.kind  # type: ignore[union-attr]
        assert r.before.startswith(f"{kind}: ") and r.after.startswith(f"{kind}: "), r


async def test_a_pair_tests_a_type_only_close_by_its_types_and_any_other_close_by_its_matcher(
    tmp_path: Path,
) -> None:
    pinned, general = compile_rules(
        """
        rules:
          - name: pinned
            kind: pair
            match: {type: down}
            close: {type: {in: [up, reset]}}
            within: 30s
            on_close: [{annotate: {pinned: closed}}]
          - name: general
            kind: pair
            match: {type: down}
            close: {type: up, severity: clear}
            within: 30s
            on_close: [{annotate: {general: closed}}]
        """,
        tmp_path,
    )
    assert isinstance(pinned, Pair) and pinned.close_types == frozenset({"up", "reset"})
    assert isinstance(general, Pair) and general.close_types is None
    out = await Run(pinned, general).feed(
        E(0, "down"), E(1, "up", severity="major"), E(2, "down"), E(3, "reset")
    )
    closed = [(e.type, e.attributes.get("pinned"), e.attributes.get("general")) for e in out]
    # a major `up` closes the pinned pair only; `reset` closes it again, never the general one
    assert closed == [
        ("down", None, None),
        ("up", "closed", None),
        ("down", None, None),
        ("reset", "closed", None),
    ]


def test_rules_with_the_same_group_by_share_one_key_function(tmp_path: Path) -> None:
    many = "".join(
        f"  - {{name: t{i}, kind: threshold, match: {{type: x{i}}}, group_by: [host, attributes.user],"
        f" count: 2, within: 1m}}\n"
        for i in range(3)
    )
    one = "  - {name: other, kind: threshold, match: {type: y}, group_by: [host], count: 2, within: 1m}\n"
    engines = compile_rules("rules:\n" + many + one, tmp_path)
    assert engines[0].key is engines[1].key is engines[2].key
    assert engines[3].key is not engines[0].key
    ev = E(0, "x0", host="sw1", user="bob")
    assert engines[0].key(ev) == ("sw1", "bob") and engines[3].key(ev) == ("sw1",)
    bad = "rules:\n  - {name: b, kind: threshold, match: {type: y}, group_by: [nope], count: 2, within: 1m}\n"
    assert any("unknown field" in e for e in errors_of(bad, tmp_path))


_PATHS = st.sampled_from(
    ["host", "type", "resource", "message", "source", "id", "fingerprint", "severity", "time",
     "attributes.user", "attributes.a.b", "attributes.__class__", "attributes.get"]
)  # fmt: skip
_VALUES = (
    st.none() | st.text(max_size=3) | st.integers() | st.dictionaries(st.sampled_from("ab"), st.integers())
)


@settings(max_examples=200, deadline=None)
@given(
    paths=st.lists(_PATHS, max_size=4),
    attrs=st.dictionaries(st.sampled_from(["user", "a", "get", "__class__"]), _VALUES, max_size=4),
    host=st.text(max_size=3),
)
def test_a_key_is_the_tuple_of_its_getters_whatever_builds_it(
    paths: list[str], attrs: dict, host: str
) -> None:
    ev = E(0, "linkDown", host=host, resource="Gi0/1", **attrs)
    assert key_fn(paths, None)(ev) == tuple(compile_field(p)(ev) for p in paths)


def test_group_by_keys_are_tuples_of_the_fields_whatever_getter_builds_them() -> None:
    ev = E(0, "linkDown", host="sw1", resource="Gi0/1", peer="10.0.0.1")
    assert key_fn(["host", "resource"], None)(ev) == ("sw1", "Gi0/1")
    assert key_fn(["host", "type", "resource"], None)(ev) == ("sw1", "linkDown", "Gi0/1")
    assert key_fn(["host", "attributes.peer"], None)(ev) == ("sw1", "10.0.0.1")
    assert key_fn(["host", "severity"], None)(ev) == ("sw1", "major")
    assert key_fn(["host"], None)(ev) == ("sw1",)
