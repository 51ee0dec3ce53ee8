"""The rules load against the one service catalogue (availability.services_file): topology impact
takes a CI's services from it, and what the inventory and topology files say against it is warned
at each load with its file:line:column, while the load goes on and enrichment is unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

from correlator.catalogue import load_catalogue
from correlator.cli import main
from correlator.clock import Clock
from correlator.config import Config, StorageConfig
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.rules import reload as rules_reload
from correlator.rules.loader import load_rules
from correlator.rules.reload import RulesHolder
from tests.unit.rules.helpers import ev

SERVICES = """\
services:
  billing:
    all_of: [srv, db]
  wifi:
    any_of: [acc1, acc2]
"""
TOPOLOGY = """\
cis:
  core: {}
  acc1: {parents: [core], services: [wifi]}
  srv: {depends_on: [acc1], services: [billing, wifi]}
"""
RULES = """\
rules:
  - {name: inventory, inventory: true}
  - {name: root-cause, kind: topology, topology: ../topology.yaml, down: {type: nodeDown}, up: {type: nodeUp}}
  - {name: root-cause-2, kind: topology, topology: ../topology.yaml, down: {type: hostDown}, up: {type: hostUp}}
"""
INVENTORY = """\
hosts:
  srv: {site: par1, service: billing}
  acc1: {site: par1, service: voice}
  db:
    site: lyo1
    service: wifi
  core: {site: par1}
"""


def setup(tmp_path: Path, inventory: str = INVENTORY, name: str = "inventory.yaml") -> Config:
    (tmp_path / "services.yaml").write_text(SERVICES)
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    (tmp_path / name).write_text(inventory)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    return Config(
        rules_dir=rules,
        inventory_file=tmp_path / name,
        availability={"services_file": str(tmp_path / "services.yaml")},
        storage=StorageConfig(data_dir=tmp_path / "data"),
    )


def test_inventory_and_topology_disagreements_are_warned_once_each_with_their_place(tmp_path):
    config = setup(tmp_path)
    rs = load_rules(config.rules_dir, config.inventory_file, load_catalogue(config))
    s, i = tmp_path / "services.yaml", tmp_path / "inventory.yaml"
    t = config.rules_dir / "../topology.yaml"  # as the rule names it
    assert rs.warnings == [
        f"{i}:3:31: host 'acc1' has service 'voice', a service {s} does not define;"
        " events are still enriched with it",
        f"{i}:6:14: host 'db' has service 'wifi', but 'wifi' in {s} ({s}:4:3) does not have 'db' as a"
        " member ('db' is in: billing); events are still enriched with it",
        f"{t}:3:38: per-CI 'services' in a topology file are deprecated while availability.services_file"
        f" is set: impacted_services come from {s} (2 CIs here list services; remove them)",
        f"{t}:4:49: CI 'srv' lists service 'wifi', but 'wifi' in {s} ({s}:4:3) does not have 'srv' as a"
        f" member ('srv' is in: billing); impacted_services follow {s}",
    ]  # two topology rules share the file: its warnings are said once


def test_a_csv_inventory_warns_with_the_row_line(tmp_path):
    config = setup(tmp_path, "host,site,service\nsrv,par1,billing\ndb,lyo1,wifi\n", "inventory.csv")
    rs = load_rules(config.rules_dir, config.inventory_file, load_catalogue(config))
    assert rs.warnings[0].startswith(f"{tmp_path / 'inventory.csv'}:3:1: host 'db' has service 'wifi', but")


def test_without_a_services_file_nothing_is_checked(tmp_path):
    config = setup(tmp_path)
    assert load_rules(config.rules_dir, config.inventory_file).warnings == []


async def test_the_holder_logs_the_warnings_and_enrichment_keeps_the_inventory_service(tmp_path, caplog):
    config = setup(tmp_path)
    holder = RulesHolder(config.rules_dir, config.inventory_file, load_catalogue(config))
    with caplog.at_level(logging.WARNING, logger="correlator.rules.reload"):
        holder.load_initial()
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4 and logged[0].startswith(f"rules start: {tmp_path / 'inventory.yaml'}:3:31:")
    assert holder.last.ok and holder.last.as_dict()["warnings"] == holder.current.warnings
    e = ev("acc1")
    holder.current.run([e], [])
    assert e.attributes["service"] == "voice", "the inventory column is still copied as it is"
    assert len((await holder.reload("test")).warnings) == 4, "said again at every load"


def test_many_warnings_are_logged_up_to_a_limit(caplog):
    with caplog.at_level(logging.WARNING, logger="correlator.rules.reload"):
        rules_reload._log_warnings("start", [f"w{i}" for i in range(rules_reload.LOGGED_WARNINGS + 7)])
    assert len(caplog.records) == rules_reload.LOGGED_WARNINGS + 1
    assert "7 more warnings" in caplog.records[-1].getMessage()


async def test_one_catalogue_serves_availability_and_topology_impact(tmp_path):
    config = setup(tmp_path)
    pipeline = build_pipeline(config)  # as replay builds it: the catalogue loaded here, once
    holder = pipeline.find("filter")._rules  # type: ignore[union-attr]
    assert holder.catalogue is not None
    assert pipeline.find("availability").state.model is holder.catalogue.current.model  # type: ignore[union-attr]
    out = await pipeline.run(
        [ev("db", "nodeDown", time=10.0, received=10.0)], StageContext(Clock(0), live=False)
    )
    assert out[0].attributes["impacted_services"] == ["billing"]  # db is in no topology entry


def test_rules_check_prints_the_warnings_and_passes(tmp_path, capsys):
    config = setup(tmp_path)
    (tmp_path / "correlator.yaml").write_text(
        f"rules_dir: {config.rules_dir}\ninventory_file: {config.inventory_file}\n"
        f"availability:\n  services_file: {tmp_path / 'services.yaml'}\n"
    )
    assert main(["rules", "check", "--config", str(tmp_path / "correlator.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "OK: 3 rules" in out and "4 warning(s)" in out
    assert err.splitlines()[0] == (
        f"warning: {tmp_path / 'inventory.yaml'}:3:31: host 'acc1' has service 'voice',"
        f" a service {tmp_path / 'services.yaml'} does not define; events are still enriched with it"
    )
