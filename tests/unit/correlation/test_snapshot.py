"""A restart forgets no open window, pending pair, heartbeat deadline, group or flap."""

from __future__ import annotations

from pathlib import Path

from correlator.correlation import actions, snapshot
from correlator.correlation.absence import Absence
from correlator.correlation.core import Engine
from correlator.correlation.flapping import Flapping
from correlator.correlation.group import Group
from correlator.correlation.pair import Pair
from correlator.correlation.sequence import SequenceRule
from correlator.correlation.threshold import Threshold

from .support import E, Run, by, generated, m, types


def rules() -> list[Engine]:
    return [
        Threshold(
            "th", m(type="auth"), by("host"), count=3, within=60, hooks={"fire": [actions.emit("storm")]}
        ),
        Pair("pair", m(type="linkDown"), m(type="linkUp"), by("host"), within=30),
        Absence("hb", m(type="heartbeat"), by("host"), every=60),
        Group("grp", m(type="nodeDown"), by("attributes.site"), group_wait=30),
        Flapping("flap", m(type="link"), by("host"), within=600, high=3, low=1),
        SequenceRule(
            "seq",
            [m(type="a"), m(type="b")],
            by("host"),
            within=100,
            hooks={"complete": [actions.emit("ab")], "timeout": [actions.incident("open")]},
        ),
    ]


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "correlation.db"
    first = Run(*rules())
    await first.feed(
        E(0, "auth"),
        E(1, "auth"),
        E(2, "linkDown"),
        E(3, "heartbeat"),
        E(4, "nodeDown", "sw1", site="par"),
        E(5, "link", severity="major"),
        E(6, "link", severity="clear"),
        E(7, "link", severity="major"),
        E(8, "a"),
    )
    assert await snapshot.save(first.stage, path) > 0

    second = Run(*rules(), start=10)
    assert len(snapshot.restore(second.stage, path)) == 6
    out = await second.feed(E(10, "auth"), E(11, "b"))
    assert types(out) == ["auth", "storm", "b", "ab"]
    later = await second.advance(100)
    assert sorted(types(later)) == ["grp.group", "heartbeat.missed", "pair.timeout"]
    assert {e.type: e.time for e in later} == {"pair.timeout": 32, "grp.group": 34, "heartbeat.missed": 63}
    flap = second.stage.engines[4]
    assert flap.keys() == 1


async def test_saving_twice_keeps_only_the_latest_and_removed_rules_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "correlation.db"
    run = Run(*rules())
    await run.feed(E(0, "linkDown"))
    await snapshot.save(run.stage, path)
    await run.feed(E(1, "linkUp"))
    await snapshot.save(run.stage, path)
    fresh = Run(Pair("pair", m(type="linkDown"), m(type="linkUp"), by("host"), within=30))
    snapshot.restore(fresh.stage, path)
    assert generated(await fresh.advance(100)) == []


def test_missing_or_broken_file_starts_empty(tmp_path: Path) -> None:
    run = Run(*rules())
    assert snapshot.restore(run.stage, tmp_path / "none.db") == {}
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    assert snapshot.restore(run.stage, bad) == {}
