"""absence: every router must send a heartbeat at least every 60 s; silence emits heartbeat.missed."""

from __future__ import annotations

from correlator.correlation import actions
from correlator.correlation.absence import Absence
from correlator.event import Severity

from .support import E, Run, by, m, types


def heartbeat(expect: tuple[tuple[str, ...], ...] = ()) -> Absence:
    return Absence(
        "router-heartbeat",
        m(type="heartbeat"),
        by("host"),
        every=60,
        expect=expect,
        hooks={"missed": [actions.incident("open")], "back": [actions.incident("resolve")]},
    )


async def test_regular_heartbeats_emit_nothing() -> None:
    run = Run(heartbeat())
    out = await run.feed(*(E(t, "heartbeat") for t in range(0, 300, 50)))
    assert types(out) == ["heartbeat"] * 6


async def test_silence_emits_missed_at_the_deadline_and_a_clear_when_it_returns() -> None:
    run = Run(heartbeat())
    await run.feed(E(0, "heartbeat"), E(50, "heartbeat"))
    assert await run.advance(109) == []
    [missed] = await run.advance(200)
    assert (missed.type, missed.host, missed.time, missed.severity) == (
        "heartbeat.missed",
        "r1",
        110,
        Severity.MAJOR,
    )
    assert missed.attributes["correlation"]["last_seen"] == 50
    assert await run.advance(1000) == []  # missed once, not every period
    out = await run.feed(E(1200, "heartbeat"))
    assert types(out) == ["heartbeat", "heartbeat.missed"]
    assert out[1].severity == Severity.CLEAR
    assert out[1].fingerprint == missed.fingerprint
    assert [r.action for r in run.take_responses()] == ["open", "resolve"]


async def test_listed_keys_are_expected_even_if_they_never_reported() -> None:
    run = Run(heartbeat(expect=(("r1",), ("r2",), ("r3",))), start=1000)
    out = await run.feed(E(1030, "heartbeat", "r2"))
    out += await run.advance(1061)
    assert sorted(e.host for e in out if e.type == "heartbeat.missed") == ["r1", "r3"]
    assert {e.time for e in out if e.type == "heartbeat.missed"} == {1060}


async def test_each_key_has_its_own_deadline() -> None:
    run = Run(heartbeat())
    await run.feed(E(0, "heartbeat", "a"), E(30, "heartbeat", "b"))
    first = await run.advance(70)
    assert [e.host for e in first] == ["a"]
    second = await run.advance(95)
    assert [e.host for e in second] == ["b"]
