"""topology: a switch behind a down router is a symptom attached to the router's incident."""

from __future__ import annotations

import pytest

from correlator.availability import parse_services
from correlator.catalogue import Catalogue, CatalogueHolder
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


# --- with a service catalogue (availability.services_file): it says which services a CI is in ---

SERVICES = """\
services:
  billing:
    all_of: [srv, {ci: db, resource: disk0}]
  wifi:
    any_of: [acc1, acc2]
"""

DISAGREEING = """\
cis:
  core: {}
  dist: {parents: [core]}
  acc1: {parents: [dist], services: [wifi]}
  acc2: {parents: [dist], services: [voice]}
  srv: {depends_on: [acc1], services: [billing, wifi]}
"""


def catalogue(text: str = SERVICES) -> CatalogueHolder:
    model = parse_services(loads(text, "services.yaml"), "services.yaml")
    return CatalogueHolder(Catalogue.of(model, "services.yaml"))


def with_catalogue(text: str = TOPOLOGY, holder: CatalogueHolder | None = None) -> TopologyRule:
    topo = parse_topology(loads(text, "topology.yaml"), "topology.yaml", holder or catalogue())
    return TopologyRule("root-cause", m(type="nodeDown"), m(type="nodeUp"), topo)


async def test_without_a_catalogue_impacted_services_come_from_the_topology_file() -> None:
    run = Run(root_cause())
    out = await run.feed(E(0, "nodeDown", "acc2"), E(1, "nodeDown", "acc1"), E(2, "nodeDown", "db"))
    assert [e.attributes["impacted_services"] for e in out] == [[], ["billing", "wifi"], []]


async def test_with_a_catalogue_impacted_services_are_the_catalogue_services_downstream() -> None:
    run = Run(with_catalogue())
    out = await run.feed(E(0, "nodeDown", "acc2"), E(1, "nodeDown", "srv"), E(2, "nodeDown", "db"))
    # acc2 lists no service in the topology file but is a wifi member; srv's own file entry says
    # billing only, and so does the catalogue; db is in no topology entry, only in the catalogue.
    assert [e.attributes["impacted_services"] for e in out] == [["wifi"], ["billing"], ["billing"]]
    out = await Run(with_catalogue()).feed(E(0, "nodeDown", "dist"))
    assert out[0].attributes["impacted_services"] == ["billing", "wifi"]  # acc1, acc2, srv behind it


async def test_a_swapped_catalogue_gives_impacted_services_from_the_next_event_on() -> None:
    holder = catalogue()
    run = Run(with_catalogue(holder=holder))
    [first] = await run.feed(E(0, "nodeDown", "acc2"))
    holder.current = catalogue("services:\n  wlan:\n    any_of: [acc2]\n").current  # a services reload
    [second] = await run.feed(E(1, "nodeDown", "srv"))
    assert first.attributes["impacted_services"] == ["wifi"]
    assert second.attributes["impacted_services"] == [], "srv is in no service any more"
    [third] = await Run(with_catalogue(holder=holder)).feed(E(0, "nodeDown", "acc2"))
    assert third.attributes["impacted_services"] == ["wlan"]


def test_topology_services_the_catalogue_does_not_back_are_warned_once_with_their_place() -> None:
    topo = parse_topology(loads(DISAGREEING, "topology.yaml"), "topology.yaml", catalogue())
    assert topo.impacted_services("srv") == ["billing"], "the catalogue wins"
    assert topo.impacted_services("acc2") == ["wifi"]
    assert list(topo.warnings) == [
        "topology.yaml:4:38: per-CI 'services' in a topology file are deprecated while"
        " availability.services_file is set: impacted_services come from services.yaml"
        " (3 CIs here list services; remove them)",
        "topology.yaml:5:38: CI 'acc2' lists service 'voice', a service services.yaml does not define;"
        " impacted_services follow services.yaml",
        "topology.yaml:6:49: CI 'srv' lists service 'wifi', but 'wifi' in services.yaml"
        " (services.yaml:4:3) does not have 'srv' as a member ('srv' is in: billing);"
        " impacted_services follow services.yaml",
    ]


def test_a_topology_file_without_services_gives_no_warning() -> None:
    plain = "cis:\n  core: {}\n  srv: {parents: [core]}\n"
    assert parse_topology(loads(plain, "t.yaml"), "t.yaml", catalogue()).warnings == ()
    assert parse_topology(loads(DISAGREEING, "t.yaml"), "t.yaml").warnings == (), (
        "no catalogue: nothing to disagree with"
    )
