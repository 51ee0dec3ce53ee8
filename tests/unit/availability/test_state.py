"""Availability: given these events at these times, expect this state, these outages and these figures.

Time only moves through the Clock; persistence is checked by reopening the stage on the same file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from correlator.availability import AvailabilityStage, parse_services, parse_settings
from correlator.availability.stage import AvailabilityExporter
from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.pipeline import StageContext
from correlator.yamlfile import loads

T0 = 1_790_000_000.0
HOUR = 3600.0
SERVICES = """
services:
  web-shop:
    all_of:
      - fw1
      - any_of:
          - {ci: r1, resource: uplink-a}
          - {ci: r2, resource: uplink-b}
"""
_ids = itertools.count()


def ev(t: float, host: str, typ: str, sev: Severity, resource: str = "") -> Event:
    return Event(str(next(_ids)), t, t, "test", host, typ, sev, resource)


def make_stage(
    tmp_path: Path, settings: str = "windows: [1d, 7d]\ndefault_target: 0.99\n"
) -> AvailabilityStage:
    return AvailabilityStage(parse_settings(loads(settings)), parse_services(loads(SERVICES)), tmp_path)


async def feed(stage: AvailabilityStage, clock: Clock, *events: Event) -> None:
    for e in events:
        clock.advance_to(e.time)
        await stage([e], StageContext(clock, live=True))


def samples(clock: Clock, stage: AvailabilityStage) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    exp = AvailabilityExporter()
    exp.source = stage
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in exp.collect() for s in fam.samples}


def value(figs: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return figs[(name, tuple(sorted(labels.items())))]


async def test_redundant_uplink_down_keeps_service_up_and_both_down_is_an_outage(tmp_path: Path):
    clock = Clock(T0)
    stage = make_stage(tmp_path)
    await stage.open(clock)
    await feed(stage, clock, ev(T0 + HOUR, "r1", "IF-MIB::linkDown", Severity.MAJOR, "uplink-a"))
    assert stage.state.down["web-shop"] is False
    await feed(stage, clock, ev(T0 + 2 * HOUR, "r2", "IF-MIB::linkDown", Severity.MAJOR, "uplink-b"))
    assert stage.state.down["web-shop"] is True
    await feed(stage, clock, ev(T0 + 2.5 * HOUR, "r1", "IF-MIB::linkUp", Severity.INFO, "uplink-a"))
    clock.advance_to(T0 + 4 * HOUR)
    f = samples(clock, stage)
    assert value(f, "correlator_service_up", service="web-shop") == 1.0
    assert value(f, "correlator_outages_total", service="web-shop") == 1.0
    assert value(f, "correlator_outage_seconds_total", service="web-shop") == 1800.0
    assert value(f, "correlator_availability_ratio", service="web-shop", window="1d") == pytest.approx(
        1 - 0.5 / 4
    )
    assert value(f, "correlator_sla_breach", service="web-shop", window="1d") == 1.0
    assert value(f, "correlator_mtrs_seconds", service="web-shop", window="7d") == 1800.0
    assert value(f, "correlator_mtbf_seconds", service="web-shop", window="7d") == 3.5 * HOUR
    assert value(f, "correlator_ci_up", ci="r1") == 1.0, "a resource down is not the CI down"
    await stage.close()


async def test_clear_of_the_same_type_ends_the_condition_and_minor_changes_nothing(tmp_path: Path):
    clock = Clock(T0)
    stage = make_stage(tmp_path)
    await stage.open(clock)
    await feed(stage, clock, ev(T0 + 10, "fw1", "heartbeat.missed", Severity.WARNING))
    assert stage.state.down["web-shop"] is False
    await feed(stage, clock, ev(T0 + 20, "fw1", "heartbeat.missed", Severity.CRITICAL))
    await feed(stage, clock, ev(T0 + 25, "fw1", "snmp.unreachable", Severity.MAJOR))
    await feed(stage, clock, ev(T0 + 30, "fw1", "heartbeat.missed", Severity.CLEAR))
    assert stage.state.down["web-shop"] is True, "still unreachable"
    await feed(stage, clock, ev(T0 + 40, "fw1", "snmp.unreachable", Severity.CLEAR))
    assert stage.state.down["web-shop"] is False
    assert stage.state.history["web-shop"].recent == [(T0 + 20, T0 + 40)]
    await feed(stage, clock, ev(T0 + 50, "unknown-host", "host.down", Severity.CRITICAL))
    assert ("unknown-host", "") not in stage.state.conditions
    await stage.close()


async def test_a_restart_changes_no_figure(tmp_path: Path):
    clock = Clock(T0)
    stage = make_stage(tmp_path)
    await stage.open(clock)
    await feed(
        stage,
        clock,
        ev(T0 + HOUR, "fw1", "host.down", Severity.CRITICAL),
        ev(T0 + 2 * HOUR, "fw1", "host.up", Severity.INFO),
        ev(T0 + 3 * HOUR, "fw1", "host.down", Severity.CRITICAL),
    )
    clock.advance_to(T0 + 5 * HOUR)
    before = samples(clock, stage)
    await stage.close()
    again = make_stage(tmp_path)
    await again.open(clock)
    assert samples(clock, again) == before
    assert value(before, "correlator_outage_seconds_total", service="web-shop") == 3 * HOUR
    assert again.state.down["web-shop"] is True, "the open outage and its condition survive"
    await feed(again, clock, ev(T0 + 6 * HOUR, "fw1", "host.up", Severity.INFO))
    assert again.state.history["web-shop"].recent[-1] == (T0 + 3 * HOUR, T0 + 6 * HOUR)
    await again.close()


async def test_maintenance_is_excluded(tmp_path: Path):
    settings = (
        "windows: [1d]\nmaintenance:\n"
        "  - {start: '2026-09-21T14:00:00Z', end: '2026-09-21T16:00:00Z', services: [web-shop]}\n"
    )
    stage = make_stage(tmp_path, settings)
    m = stage.state.settings.maintenance[0]
    start = m.start - HOUR
    clock = Clock(start)
    await stage.open(clock)
    # Down from 15:00 (inside maintenance) until 17:00: only the hour after maintenance counts.
    await feed(
        stage,
        clock,
        ev(m.start + HOUR, "fw1", "host.down", Severity.CRITICAL),
        ev(m.end + HOUR, "fw1", "host.up", Severity.INFO),
    )
    clock.advance_to(m.end + 2 * HOUR)
    f = samples(clock, stage)
    assert value(f, "correlator_outages_total", service="web-shop") == 1
    assert value(f, "correlator_outage_seconds_total", service="web-shop") == HOUR
    observed = (m.end + 2 * HOUR - start) - 2 * HOUR
    assert value(f, "correlator_availability_ratio", service="web-shop", window="1d") == pytest.approx(
        1 - HOUR / observed
    )
    await stage.close()


async def test_replay_never_writes(tmp_path: Path):
    clock = Clock(T0)
    stage = make_stage(tmp_path)
    await stage([ev(T0, "fw1", "host.down", Severity.CRITICAL)], StageContext(clock, live=False))
    assert stage.state.down["web-shop"] is True
    assert not (tmp_path / "availability.db").exists()


def test_an_outage_wholly_inside_maintenance_is_no_outage():
    from correlator.availability.history import ServiceHistory

    h = ServiceHistory(since=0.0, maintenance=[(100.0, 200.0)])
    h.start(120.0)
    assert h.totals(150.0) == (0, 0.0)
    h.end(180.0)
    assert h.totals(1000.0) == (0, 0.0)
    assert h.window(1000.0, 1000.0).ratio == 1.0
    h.start(190.0)  # starts inside, ends after: the part after maintenance counts
    h.end(260.0)
    assert h.totals(1000.0) == (1, 60.0)
    assert h.window(1000.0, 1000.0).ratio == pytest.approx(1 - 60 / 900)
