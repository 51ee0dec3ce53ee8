"""topology in a storm: every event behind a down CI is its symptom, named links, settle (hold-down),
a late root taking what its children opened, and the gate on the incidents other rules ask for."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from correlator.correlation.core import Engine
from correlator.correlation.topology import TopologyRule
from correlator.correlation.topology_file import TopologyError, parse_topology
from correlator.inventory import Inventory
from correlator.responses import IncidentRequest
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext
from correlator.yamlfile import loads

from .support import E, Run

TOPOLOGY = """
cis:
  core: {}
  dist: {parents: [{ci: core, port: up0, parent_port: te1}]}
  acc: {parents: [{ci: dist, port: up0, parent_port: ge7}]}
  srv: {depends_on: [acc]}
  other: {parents: [core]}
"""

RULES = """
rules:
  - name: root-cause
    kind: topology
    topology: ../topology.yaml
    down: {type: nodeDown}
    up: {type: nodeUp}
  - name: link-down
    kind: pair
    match: {type: linkDown}
    close: {type: linkUp}
    group_by: [host, resource]
    within: 30s
    on_timeout: [{incident: {action: open, title: "{host} {resource} down"}}]
    on_recover: [{incident: {action: resolve}}]
  - name: cpu
    kind: threshold
    match: {type: cpuHigh}
    count: 1
    within: 1m
    on_fire: [{incident: {action: open, title: "{host} cpu"}}]
"""


def engines(tmp_path: Path, rules: str = RULES) -> list[Engine]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    ctx = BuildContext(rules_dir, Inventory([]))
    return [r.compiled for r in compile_texts({"r.yaml": textwrap.dedent(rules)}, ctx)]


def asked(run: Run) -> list[tuple[str, str]]:
    return [(r.action, r.key) for r in run.take_responses() if isinstance(r, IncidentRequest)]


async def test_every_non_clear_event_behind_a_down_ci_is_a_symptom_and_stops_there(tmp_path: Path) -> None:
    run = Run(*engines(tmp_path))
    out = await run.feed(
        E(0, "nodeDown", "core"),
        E(1, "linkDown", "dist", resource="ge3"),
        E(2, "cpuHigh", "srv"),
        E(3, "linkUp", "dist", severity="clear", resource="ge3"),
    )
    link, cpu, up = out[1], out[2], out[3]
    assert link.attributes["root_cause"] == "core" and link.attributes["suppressed_by"] == "root-cause"
    assert cpu.attributes["root_cause"] == "core" and cpu.attributes["topology"] == "symptom"
    assert "root_cause" not in up.attributes, "a clear is not a symptom"
    await run.advance(120)
    # the linkDown never reached the pair rule, the cpu event never reached the threshold rule
    assert asked(run) == [
        ("open", "root-cause:core"),
        ("update", "root-cause:core"),
        ("update", "root-cause:core"),
    ]


async def test_a_named_link_makes_the_port_facing_a_down_ci_a_symptom_but_no_other_port(
    tmp_path: Path,
) -> None:
    run = Run(*engines(tmp_path))
    out = await run.feed(
        E(0, "nodeDown", "acc"),
        E(1, "linkDown", "dist", resource="ge7"),  # dist's port toward acc: a symptom of acc
        E(2, "linkDown", "dist", resource="ge8"),  # another port of a healthy dist: its own problem
    )
    assert out[1].attributes["root_cause"] == "acc"
    assert "root_cause" not in out[2].attributes
    await run.advance(60)
    assert asked(run) == [
        ("open", "root-cause:acc"),
        ("update", "root-cause:acc"),
        ("open", "link-down:dist/ge8"),
    ]


async def test_symptoms_stay_attached_for_settle_and_what_is_still_down_then_becomes_a_root(
    tmp_path: Path,
) -> None:
    run = Run(*engines(tmp_path))
    await run.feed(E(0, "nodeDown", "core"), E(1, "nodeDown", "dist"), E(2, "nodeDown", "other"))
    run.take_responses()
    out = await run.feed(
        E(100, "nodeUp", "core"), E(104, "nodeUp", "dist"), E(110, "linkDown", "dist", resource="ge1")
    )
    assert out[2].attributes["root_cause"] == "core", "within settle, still core's symptom"
    assert asked(run) == [
        ("resolve", "root-cause:core"),
        ("update", "root-cause:core"),
        ("update", "root-cause:core"),
    ]
    [tp] = [e for e in run.stage.engines if isinstance(e, TopologyRule)]
    assert tp.describe(("core",), 110) == "topology: core is up, settling for 50s more"
    await run.advance(159)
    assert asked(run) == []
    await run.advance(160)  # settle over: `other` never answered, it is an outage of its own
    assert asked(run) == [("open", "root-cause:other")]


async def test_incidents_other_rules_ask_for_on_symptoms_are_held_and_released_after_settle(
    tmp_path: Path,
) -> None:
    run = Run(*engines(tmp_path))
    # the linkDowns come before the core's own down (traps are faster than the ping that finds it)
    await run.feed(E(0, "linkDown", "dist", resource="up0"), E(1, "linkDown", "other", resource="p1"))
    await run.feed(E(10, "nodeDown", "core"))
    await run.advance(40)  # the pair rule times out: its opens join the core's incident instead
    assert asked(run) == [
        ("open", "root-cause:core"),
        ("update", "root-cause:core"),
        ("update", "root-cause:core"),
    ]
    await run.feed(E(200, "nodeUp", "core"), E(205, "linkUp", "dist", severity="clear", resource="up0"))
    await run.advance(300)
    # dist's uplink came back within settle (its resolve drops the held open); other's p1 did not
    assert asked(run) == [
        ("resolve", "root-cause:core"),
        ("resolve", "link-down:dist/up0"),
        ("open", "link-down:other/p1"),
    ]


async def test_a_root_arriving_after_its_children_opened_incidents_takes_them(tmp_path: Path) -> None:
    run = Run(*engines(tmp_path))
    await run.feed(E(0, "linkDown", "acc", resource="ge1"))
    await run.advance(31)
    assert asked(run) == [("open", "link-down:acc/ge1")]
    out = await run.feed(E(60, "nodeDown", "dist"))
    assert out[0].attributes["topology"] == "root"
    assert asked(run) == [
        ("open", "root-cause:dist"),
        ("update", "root-cause:dist"),
        ("resolve", "link-down:acc/ge1"),
    ]
    await run.feed(E(1000, "linkDown", "srv", resource="x"))  # long after: dist is still down
    await run.advance(1100)
    assert asked(run) == [("update", "root-cause:dist")]


async def test_a_root_long_after_its_children_leaves_their_incidents_alone(tmp_path: Path) -> None:
    run = Run(*engines(tmp_path))
    await run.feed(E(0, "nodeDown", "acc"))
    await run.feed(E(3600, "nodeDown", "dist"))  # an hour later: acc's outage is its own
    assert asked(run) == [("open", "root-cause:acc"), ("open", "root-cause:dist")]


async def test_state_survives_a_snapshot(tmp_path: Path) -> None:
    import orjson

    run = Run(*engines(tmp_path))
    await run.feed(E(0, "linkDown", "other", resource="p1"), E(5, "nodeDown", "core"))
    await run.advance(40)
    await run.feed(E(50, "nodeUp", "core"))
    saved = {n: orjson.loads(orjson.dumps(s)) for n, s in run.stage.snapshot().items()}
    run2 = Run(*engines(tmp_path), start=50)
    run2.stage.bind(run2.clock)
    assert run2.stage.restore(saved) == ["root-cause", "link-down", "cpu"]
    await run2.advance(200)
    assert asked(run2) == [("open", "link-down:other/p1")], "the held open comes out after settle"


def test_link_errors_name_the_place() -> None:
    with pytest.raises(TopologyError, match=r"t.yaml:3:.*unknown link key 'prt' \(did you mean 'port'\?\)"):
        parse_topology(loads("cis:\n  a: {}\n  b: {parents: [{ci: a, prt: x}]}\n", "t.yaml"), "t.yaml")
    with pytest.raises(TopologyError, match="a link is a mapping with 'ci'"):
        parse_topology(loads("cis:\n  a: {}\n  b: {parents: [{port: x}]}\n", "t.yaml"), "t.yaml")
    topo = parse_topology(loads(TOPOLOGY, "t.yaml"), "t.yaml")
    assert topo.ports[("dist", "up0")] == "core" and topo.ports[("core", "te1")] == "dist"
    assert topo.ancestors("srv") == ("acc", "dist", "core")


async def test_the_other_alarms_of_a_down_ci_are_part_of_its_outage(tmp_path: Path) -> None:
    run = Run(*engines(tmp_path))
    out = await run.feed(E(0, "nodeDown", "dist"), E(1, "cpuHigh", "dist"))
    assert out[1].attributes["root_cause"] == "dist"
    assert asked(run) == [("open", "root-cause:dist"), ("update", "root-cause:dist")]


async def test_rules_explain_shows_the_hold_and_the_promotion(tmp_path: Path) -> None:
    from correlator.config import Config
    from correlator.rules.explain import explain
    from correlator.rules.reload import RulesHolder

    engines(tmp_path)  # writes the rule and topology files
    (tmp_path / "rules" / "r.yaml").write_text(textwrap.dedent(RULES))
    holder = RulesHolder(tmp_path / "rules")
    holder.load_initial()
    events = [
        E(0, "linkDown", "other", resource="p1"),  # before the root: the pair rule takes it
        E(1, "nodeDown", "core"),
        E(2, "nodeDown", "dist"),
        E(3, "cpuHigh", "other"),
        E(100, "nodeUp", "core"),
        E(200, "cpuHigh", "r9"),
    ]
    text = (await explain(holder, Config(), events)).text()
    assert "topology: other is behind core: its events are symptoms" in text
    assert "holds incident open 'link-down:other/p1': an update of core's until core has settled" in text
    assert "core is up, settling for 60s more, holding 1 incident(s) of other rules" in text
    assert "still down after core came back and settled: a root cause of its own" in text


async def test_an_update_of_a_held_incident_goes_to_the_root_too(tmp_path: Path) -> None:
    group = """
  - name: site
    kind: group
    match: {type: hostDown}
    group_by: [host]
    group_wait: 10s
    on_flush: [{incident: {action: open, title: "{host} group"}}]
    on_join: [{incident: {action: update}}]
"""
    run = Run(*engines(tmp_path, RULES + group))
    await run.feed(E(0, "nodeDown", "core"), E(1, "hostDown", "other", severity="info"))
    await run.advance(20)  # the group's open is held
    await run.feed(E(30, "hostDown", "other", severity="info"))  # its join must not open the key
    assert asked(run) == [
        ("open", "root-cause:core"),
        ("update", "root-cause:core"),
        ("update", "root-cause:core"),
    ]


def test_a_snapshot_saved_before_settling_existed_restores_its_down_table(tmp_path: Path) -> None:
    [tp] = [e for e in engines(tmp_path) if isinstance(e, TopologyRule)]
    ev = E(0, "nodeDown", "core")
    tp.restore([("core", None, ev.to_dict()), ("dist", "core", ev.to_dict())])
    assert tp.describe(("dist",), 1) == "topology: dist is down, a symptom of core"
    assert tp.settling == {} and tp.held == {}


async def test_symptoms_it_suppresses_are_counted_like_any_suppression(tmp_path: Path) -> None:
    """correlator_correlation_suppressed_total{rule} counts every event a level-2 rule suppresses,
    the topology rule's symptoms included."""

    def counted() -> float:
        sample = REGISTRY.get_sample_value("correlator_correlation_suppressed_total", {"rule": "root-cause"})
        return sample or 0.0

    before = counted()
    run = Run(*engines(tmp_path))
    await run.feed(
        E(0, "nodeDown", "core"),
        E(1, "linkDown", "dist", resource="ge3"),
        E(2, "cpuHigh", "srv"),
    )
    assert counted() - before == 2
