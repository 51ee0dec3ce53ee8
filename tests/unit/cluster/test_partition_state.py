"""Level-2 state cut by partition: each key's state goes with the partition of its host (or site),
and a rule's state restored from one partition's cut continues exactly where it was."""

from __future__ import annotations

from typing import Any

from correlator.cluster.state import Partitioner, PartitionSnapshot, merge, replace, split, state_of
from correlator.correlation import actions
from correlator.correlation.core import Engine
from correlator.correlation.pair import Pair
from correlator.correlation.threshold import Threshold
from correlator.inventory import Asset, Inventory
from tests.unit.correlation.support import E, Run, by, generated, m

PARTS = Partitioner(None, "host", 4)


def rules() -> list[Engine]:
    th = Threshold(
        "th", m(type="auth"), by("host"), count=3, within=60, hooks={"fire": [actions.emit("storm")]}
    )
    pair = Pair("pair", m(type="linkDown"), m(type="linkUp"), by("host", "resource"), within=30)
    th.group_by = ("host",)
    pair.group_by = ("host", "resource")
    return [th, pair]


def two_hosts() -> tuple[str, str]:
    """Two hosts in different partitions."""
    first = "r0"
    other = next(f"r{i}" for i in range(1, 50) if PARTS.of_host(f"r{i}") != PARTS.of_host(first))
    return first, other


def cut(run: Run, p: int) -> dict[str, tuple[str, Any]]:
    out = {}
    for e in run.stage.engines:
        parts, _ = split(e, state_of(e), PARTS.key_function(e))
        out[e.name] = (e.kind, parts.get(p))
    return out


async def test_a_partitions_state_continues_on_another_worker() -> None:
    a, b = two_hosts()
    first = Run(*rules())
    await first.feed(E(0, "auth", a), E(1, "auth", a), E(2, "linkDown", a, resource="ge0"))
    await first.feed(E(3, "auth", b), E(4, "linkDown", b, resource="ge1"))
    snap = PartitionSnapshot(7, 42, first.clock.now(), cut(first, PARTS.of_host(a)))
    snap = PartitionSnapshot.decode(snap.encode())  # through the bucket's bytes
    assert (snap.seq, snap.store_pos) == (7, 42)

    second = Run(*rules(), start=snap.clock)
    second.stage.bind(second.clock)
    for e in second.stage.engines:
        replace(e, snap.rules[e.name][1])
    out = await second.feed(E(10, "auth", a), E(11, "auth", b), E(12, "linkUp", b, resource="ge1"))
    assert [ev.type for ev in generated(out)] == ["storm"]  # a's third auth; b's state did not come
    assert generated(out)[0].host == a
    # a's pending pair came along: its timeout fires at 2 + 30, b's never existed here
    later = await second.advance(40)
    assert [(ev.type, ev.host) for ev in generated(later)] == [("pair.timeout", a)]


async def test_forgetting_a_partition_keeps_the_others() -> None:
    a, b = two_hosts()
    run = Run(*rules())
    await run.feed(E(0, "linkDown", a, resource="x"), E(1, "linkDown", b, resource="y"))
    pair = run.stage.engines[1]
    parts, rest = split(pair, state_of(pair), PARTS.key_function(pair))
    assert set(parts) == {PARTS.of_host(a), PARTS.of_host(b)} and rest == {"pending": [], "timed_out": []}
    replace(pair, merge(rest, parts[PARTS.of_host(b)]))
    later = await run.advance(40)
    assert [(ev.type, ev.host) for ev in generated(later)] == [("pair.timeout", b)]


def test_keys_by_site_follow_the_site_and_unroutable_keys_stay() -> None:
    inv = Inventory([Asset("r1", site="par1"), Asset("r2", site="par1")])
    parts = Partitioner(inv, "site", 16)
    assert parts.of_host("r1") == parts.of_host("r2")
    grp = Threshold("grp", m(type="x"), by("attributes.site"), count=2, within=60)
    grp.group_by = ("attributes.site",)
    other = Threshold("other", m(type="x"), by("resource"), count=2, within=60)
    other.group_by = ("resource",)
    assert parts.key_function(grp)(["par1"]) == parts.of_host("r1")
    assert parts.key_function(other)(["ge0"]) is None
    data = [[["ge0"], {"count": 1}]]
    assert split(other, data, parts.key_function(other)) == ({}, data)


def test_binding_the_stage_again_keeps_one_sweep() -> None:
    """A worker re-attaches its rules at each partition it takes: the idle-key sweep stays one."""
    run = Run(*rules())
    clock = run.clock
    for _ in range(3):
        run.stage.clock = None
        run.stage.bind(clock)
    assert clock.pending() == 1
