"""Reloading the services file: kept services keep their state and figures, removed ones stop being
exported, added ones start from what is known of their members, and a broken file keeps the last
good catalogue with its file:line."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from correlator.availability import AvailabilityStage, parse_settings
from correlator.availability.reload import ServicesReloader
from correlator.catalogue import CatalogueHolder, catalogue_file
from correlator.clock import Clock
from correlator.event import Severity
from correlator.rules.reload import RulesHolder
from correlator.yamlfile import loads
from tests.unit.availability.test_state import HOUR, T0, ev, feed, samples, value

BEFORE = """\
cis: [dns1]
services:
  web-shop:
    all_of: [fw1, srv1]
  mail:
    all_of: [mx1]
"""
AFTER = """\
cis: [dns1]
services:
  web-shop:
    all_of: [fw1, srv1]
  dns:
    any_of: [dns1]
  ntp:
    any_of: [ntp1]
"""


async def world(tmp_path: Path) -> tuple[Path, AvailabilityStage, ServicesReloader, Clock]:
    path = tmp_path / "services.yaml"
    path.write_text(BEFORE)
    settings = parse_settings(loads(f"services_file: {path}\nwindows: [1d]\n"))
    holder = CatalogueHolder(catalogue_file(path))
    stage = AvailabilityStage(settings, holder.current.model, tmp_path)
    clock = Clock(T0)
    await stage.open(clock)
    rules = RulesHolder(tmp_path / "rules", None, holder)
    return path, stage, ServicesReloader(holder, settings, stage, rules, clock), clock


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_kept_services_keep_their_state_removed_ones_go_added_ones_start_from_their_members(
    tmp_path: Path,
):
    path, stage, reloader, clock = await world(tmp_path)
    try:
        await feed(stage, clock, ev(T0 + HOUR, "fw1", "host.down", Severity.CRITICAL))
        await feed(stage, clock, ev(T0 + 2 * HOUR, "dns1", "host.down", Severity.CRITICAL))
        before = samples(clock, stage)
        assert value(before, "correlator_service_up", service="web-shop") == 0.0
        assert ("correlator_service_up", (("service", "mail"),)) in before

        path.write_text(AFTER)
        result = await reloader.reload("SIGHUP")
        assert result.ok and (result.added, result.removed) == (["dns", "ntp"], ["mail"])
        assert reloader.holder.current.services_of("dns1") == ("dns",)
        after = samples(clock, stage)
        for name in ("correlator_service_up", "correlator_outages_total", "correlator_outage_seconds_total"):
            assert value(after, name, service="web-shop") == value(before, name, service="web-shop")
        assert not [k for k in after if ("service", "mail") in k[1]], "mail's series are gone"
        assert value(after, "correlator_service_up", service="dns") == 0.0, "dns1 was known to be down"
        assert value(after, "correlator_service_up", service="ntp") == 1.0, "ntp1 never reported"
        await feed(stage, clock, ev(T0 + 3 * HOUR, "fw1", "host.up", Severity.INFO))
        assert value(samples(clock, stage), "correlator_service_up", service="web-shop") == 1.0
    finally:
        await stage.close()

    # The swap was persisted: a restart on the new file resumes the same state.
    again = AvailabilityStage(reloader.settings, reloader.holder.current.model, tmp_path)
    await again.open(clock)
    try:
        restarted = samples(clock, again)
        assert value(restarted, "correlator_service_up", service="dns") == 0.0
        assert value(restarted, "correlator_outages_total", service="web-shop") == 1.0
    finally:
        await again.close()


async def test_a_removed_service_added_back_finds_its_history(tmp_path: Path):
    path, stage, reloader, clock = await world(tmp_path)
    try:
        await feed(stage, clock, ev(T0 + HOUR, "mx1", "host.down", Severity.CRITICAL))
        await feed(stage, clock, ev(T0 + 2 * HOUR, "mx1", "host.up", Severity.INFO))
        path.write_text(AFTER)
        assert (await reloader.reload("api")).ok
        path.write_text(BEFORE)
        assert (await reloader.reload("api")).ok
        figs = samples(clock, stage)
        assert value(figs, "correlator_outages_total", service="mail") == 1.0
        assert value(figs, "correlator_outage_seconds_total", service="mail") == HOUR
    finally:
        await stage.close()


async def test_a_broken_file_keeps_the_last_good_catalogue_and_names_file_and_line(tmp_path: Path):
    path, stage, reloader, clock = await world(tmp_path)
    serving = reloader.holder.current
    failures = metric("correlator_services_reload_failures_total")
    try:
        path.write_text("services:\n  web-shop:\n    all_of: []\n")
        result = await reloader.reload("file change")
        assert not result.ok and result.services == 2
        [err] = result.errors
        assert str(err) == f"{path}:3:13: 'all_of' must be a non-empty list of members"
        assert err.as_dict() | {"message": ""} == {
            "file": str(path), "line": 3, "column": 13, "message": "", "text": str(err),
        }  # fmt: skip
        assert reloader.holder.current is serving and stage.state.model is serving.model
        assert metric("correlator_services_reload_failures_total") == failures + 1
        assert metric("correlator_services_reload_failed") == 1
        assert ("correlator_service_up", (("service", "mail"),)) in samples(clock, stage)

        path.write_text("")  # caught between an editor's truncate and write
        result = await reloader.reload("file change")
        assert not result.ok and result.services == 2 and reloader.holder.current is serving
        assert "is empty, taken as being written" in str(result.errors[0])

        path.unlink()
        result = await reloader.reload("api")
        assert not result.ok and result.errors[0].as_dict()["line"] is None
        assert "no such services file" in str(result.errors[0])

        path.write_text(AFTER)
        assert (await reloader.reload("api")).ok and metric("correlator_services_reload_failed") == 0
    finally:
        await stage.close()


async def test_a_file_dropping_a_service_under_maintenance_is_refused(tmp_path: Path):
    path = tmp_path / "services.yaml"
    path.write_text(BEFORE)
    settings = parse_settings(
        loads(
            f"services_file: {path}\nmaintenance:\n"
            "  - {start: '2026-12-01T22:00:00Z', end: '2026-12-02T02:00:00Z', services: [mail]}\n",
            "correlator.yaml",
        )
    )
    holder = CatalogueHolder(catalogue_file(path))
    reloader = ServicesReloader(holder, settings, None, RulesHolder(tmp_path / "rules"), Clock(T0))
    path.write_text(AFTER)
    result = await reloader.reload("api")
    assert not result.ok and "mail" in holder.current
    assert str(result.errors[0]) == (
        f"correlator.yaml:3:5: 'availability.maintenance': unknown service 'mail' (not in {path})"
    )
