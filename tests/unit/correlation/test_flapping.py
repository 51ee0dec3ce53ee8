"""flapping: 4 state changes within 10 minutes enter flapping; leaving needs 2 or fewer (hysteresis)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from correlator.correlation.flapping import Flapping
from correlator.event import Severity

from .support import E, Run, by, generated, m, types


def port_flapping() -> Flapping:
    return Flapping("port-flapping", m(type="link"), by("host", "resource"), within=600, high=4, low=2)


def sev(i: int) -> str:
    return "major" if i % 2 == 0 else "clear"


async def test_few_changes_pass_through() -> None:
    run = Run(port_flapping())
    out = await run.feed(*(E(t, "link", severity=sev(i)) for i, t in enumerate((0, 60, 120))))
    assert types(out) == ["link"] * 3
    assert not any("suppressed_by" in e.attributes for e in out)


async def test_fourth_change_enters_flapping_once_and_suppresses_transitions() -> None:
    run = Run(port_flapping())
    out = await run.feed(*(E(t, "link", severity=sev(i)) for i, t in enumerate(range(0, 600, 60))))
    flaps = generated(out)
    assert [(e.type, e.severity) for e in flaps] == [("flapping", Severity.WARNING)]
    assert flaps[0].time == 240  # changes at 60, 120, 180, 240
    link = [e for e in out if e.type == "link"]
    assert [("suppressed_by" in e.attributes) for e in link] == [False] * 4 + [True] * 6


async def test_leaves_flapping_with_a_clear_when_changes_fall_to_low_even_with_no_events() -> None:
    run = Run(port_flapping())
    await run.feed(*(E(t, "link", severity=sev(i)) for i, t in enumerate((0, 10, 20, 30, 40))))
    # changes at 10, 20, 30, 40; 2 or fewer remain once 20 ages out at 620
    assert await run.advance(619) == []
    [stop] = await run.advance(700)
    assert (stop.type, stop.severity, stop.time) == ("flapping", Severity.CLEAR, 620)
    assert stop.fingerprint == stop.fingerprint
    out = await run.feed(E(800, "link", severity="clear"))
    assert "suppressed_by" not in out[0].attributes


async def test_hysteresis_stays_flapping_between_low_and_high() -> None:
    run = Run(port_flapping())
    await run.feed(*(E(t, "link", severity=sev(i)) for i, t in enumerate((0, 10, 20, 30, 40))))
    # a change every 190 s keeps 3 changes in the window: below high (4) but above low (2)
    out: list = []
    for i, t in enumerate(range(230, 1500, 190)):
        out += await run.feed(E(t, "link", severity=sev(i + 1)))
    assert not [e for e in generated(out) if e.severity == Severity.CLEAR]
    assert all(e.attributes.get("suppressed_by") == "port-flapping" for e in out if e.type == "link")


async def test_suppressing_marks_and_counts_as_the_suppress_response_does() -> None:
    def suppressed(rule: str) -> float:
        return REGISTRY.get_sample_value("correlator_correlation_suppressed_total", {"rule": rule}) or 0.0

    before = suppressed("port-flapping")
    run = Run(port_flapping())
    out = await run.feed(*(E(t, "link", severity=sev(i)) for i, t in enumerate(range(0, 600, 60))))
    marked = [e for e in out if e.attributes.get("suppressed_by") == "port-flapping"]
    assert len(marked) == 6
    assert suppressed("port-flapping") - before == 6
    assert run.stage.sink.suppressed is None  # the stage clears the marker after each event
