"""topology: a switch behind a down router is a symptom attached to the router's incident."""

from __future__ import annotations

import pytest

from correlator.correlation.topology import TopologyRule
from correlator.correlation.topology_file import TopologyError, parse_topology
from correlator.yamlfile import loads

from .support import E, Run, m

TOPOLOGY = """
cis:
  core: {}
  dist: {parents: [core]}
  acc1: {parents: [dist], services: [wifi]}
  acc2: {parents: [dist]}
  srv: {depends_on: [acc1], services: [billing]}
"""


def root_cause() -> TopologyRule:
    topo = parse_topology(loads(TOPOLOGY, "topology.yaml"), "topology.yaml")
    return TopologyRule("root-cause", m(type="nodeDown"), m(type="nodeUp"), topo)


def incidents(run: Run) -> list[tuple[str, str]]:
    return [(r.action, r.key) for r in run.take_responses()]


async def test_event_behind_a_down_ci_is_a_symptom_of_it() -> None:
    run = Run(root_cause())
    out = await run.feed(E(0, "nodeDown", "dist"), E(5, "nodeDown", "acc1"), E(6, "nodeDown", "srv"))
    assert out[0].attributes["topology"] == "root"
    assert out[0].attributes["impacted_services"] == ["billing", "wifi"]
    assert [e.attributes.get("root_cause") for e in out[1:]] == ["dist", "dist"]
    assert incidents(run) == [
        ("open", "root-cause:dist"),
        ("update", "root-cause:dist"),
        ("update", "root-cause:dist"),
    ]


async def test_when_the_root_clears_symptoms_are_re_evaluated() -> None:
    run = Run(root_cause())
    await run.feed(
        E(0, "nodeDown", "core"), E(1, "nodeDown", "dist"), E(2, "nodeDown", "acc1"), E(3, "nodeDown", "srv")
    )
    run.take_responses()
    await run.feed(E(10, "nodeUp", "core"))
    # dist becomes the root; acc1 and srv now hang off it
    assert incidents(run) == [
        ("resolve", "root-cause:core"),
        ("open", "root-cause:dist"),
        ("update", "root-cause:dist"),
        ("update", "root-cause:dist"),
    ]
    await run.feed(E(20, "nodeUp", "dist"))
    assert incidents(run)[:2] == [("resolve", "root-cause:dist"), ("open", "root-cause:acc1")]


async def test_root_arriving_after_its_symptoms_absorbs_their_incidents() -> None:
    run = Run(root_cause())
    await run.feed(E(0, "nodeDown", "acc1"), E(1, "nodeDown", "acc2"))
    assert incidents(run) == [("open", "root-cause:acc1"), ("open", "root-cause:acc2")]
    await run.feed(E(2, "nodeDown", "dist"))
    assert incidents(run) == [
        ("open", "root-cause:dist"),
        ("update", "root-cause:dist"),
        ("resolve", "root-cause:acc1"),
        ("update", "root-cause:dist"),
        ("resolve", "root-cause:acc2"),
    ]


async def test_unknown_ci_is_its_own_root() -> None:
    run = Run(root_cause())
    out = await run.feed(E(0, "nodeDown", "printer"))
    assert out[0].attributes["topology"] == "root"
    assert incidents(run) == [("open", "root-cause:printer")]


def test_topology_errors_name_the_place() -> None:
    with pytest.raises(
        TopologyError,
        match=r"topology.yaml:3:3: CI 'a' refers to unknown CI 'corr' \(did you mean 'core'\?\)",
    ):
        parse_topology(loads("cis:\n  core: {}\n  a: {parents: [corr]}\n", "topology.yaml"), "topology.yaml")
    with pytest.raises(TopologyError, match="upstream of itself"):
        parse_topology(loads("cis:\n  a: {parents: [b]}\n  b: {parents: [a]}\n", "t.yaml"), "t.yaml")
    with pytest.raises(TopologyError, match="did you mean 'parents'"):
        parse_topology(loads("cis:\n  a: {parent: [b]}\n", "t.yaml"), "t.yaml")
