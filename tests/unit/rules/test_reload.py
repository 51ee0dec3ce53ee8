"""Reloads: whole-set validation, atomic swap under concurrent traffic, errors keep the old set."""

from __future__ import annotations

import asyncio

from correlator.clock import Clock
from correlator.config import Config
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.rules.reload import RELOAD_SUCCESS, RulesHolder
from tests.unit.rules.helpers import ev


def write_set(d, version: int, n: int = 50) -> None:
    """n rules that all stamp the same version: an event sees one version only if the swap is atomic."""
    lines = ["rules:"]
    for i in range(n):
        lines.append(f"  - {{name: r{i}, set: {{attributes.v{i}: {version}}}}}")
    (d / "set.yaml").write_text("\n".join(lines) + "\n")


async def test_no_event_sees_a_half_loaded_set(tmp_path):
    write_set(tmp_path, 1)
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    pipeline = build_pipeline(Config(rules_dir=tmp_path), holder)
    clock = Clock(0.0)
    seen: list[set[int]] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while True:
            last = stop.is_set()  # one more batch once the last reload is done: it must see set 11
            out = await pipeline.run([ev(f"h{i}") for i in range(20)], StageContext(clock, live=False))
            seen.extend({v for k, v in e.attributes.items()} for e in out)
            if last:
                return
            # A pause, not sleep(0): a loop that never waits keeps the GIL from the thread compiling
            # the reload (CPython hands it over only after a switch interval with no release, and
            # every turn of a spinning loop releases it), which made this test take a minute.
            await asyncio.sleep(0.001)

    async def reloads() -> None:
        for version in range(2, 12):
            write_set(tmp_path, version)
            result = await holder.reload("test")
            assert result.ok
            await asyncio.sleep(0)
        stop.set()

    await asyncio.gather(traffic(), reloads())
    assert seen and all(len(versions) == 1 for versions in seen)
    assert {next(iter(v)) for v in seen} >= {1, 11}


async def test_a_rule_file_emptied_while_being_written_keeps_the_previous_set(tmp_path):
    write_set(tmp_path, 1, n=3)
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    before = holder.current
    (tmp_path / "set.yaml").write_text("")  # an editor's truncate, read before its write
    result = await holder.reload("file change")
    assert not result.ok and holder.current is before
    assert str(result.errors[0]).startswith(f"{tmp_path}/set.yaml:1:1: the file is empty; it held rules")
    (tmp_path / "new.yaml").write_text("")  # a new empty file held no rules: nothing to protect
    (tmp_path / "set.yaml").write_text("rules: []\n")  # removing the rules on purpose
    result = await holder.reload("file change")
    assert result.ok and holder.current.rules == []


async def test_a_broken_set_keeps_the_previous_one_serving(tmp_path):
    write_set(tmp_path, 1, n=3)
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    before = holder.current
    (tmp_path / "bad.yaml").write_text("rules:\n  - name: bad\n    dorp: true\n")
    result = await holder.reload("test")
    assert not result.ok
    assert holder.current is before
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(
        f"{tmp_path}/bad.yaml:3:5: unknown key 'dorp' (did you mean 'drop'?)"
    )
    assert RELOAD_SUCCESS._value.get() == 0
    assert holder.errors == result.errors
    (tmp_path / "bad.yaml").unlink()
    result = await holder.reload("test")
    assert result.ok and holder.errors == [] and RELOAD_SUCCESS._value.get() == 1
    assert holder.current is not before


async def test_concurrent_reloads_are_serialised(tmp_path):
    write_set(tmp_path, 1, n=2)
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    results = await asyncio.gather(*(holder.reload(f"t{i}") for i in range(5)))
    assert all(r.ok for r in results)
    assert len(holder.current.rules) == 2


def test_initial_load_failure_raises(tmp_path):
    import pytest

    from correlator.rules.errors import RuleErrors

    (tmp_path / "x.yaml").write_text("rules: [{name: a}]")
    with pytest.raises(RuleErrors, match="has no action"):
        RulesHolder(tmp_path).load_initial()


def test_a_missing_directory_means_no_rules_for_the_daemon(tmp_path):
    holder = RulesHolder(tmp_path / "absent")
    holder.load_initial()
    assert holder.current.rules == [] and holder.last.ok


async def test_the_inventory_reloads_with_the_rules(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules: [{name: inv, inventory: true}]\n")
    inv = tmp_path / "inventory.csv"
    inv.write_text("host,site\nsw1,par1\n")
    holder = RulesHolder(rules, inv)
    holder.load_initial()
    assert holder.current.inventory.get("sw1").site == "par1"
    inv.write_text("host,site\nsw1,lyo1\n")
    assert (await holder.reload("test")).ok
    e = ev("sw1")
    holder.current.run([e], [])
    assert e.attributes["site"] == "lyo1"
    inv.write_text("host,criticality\nsw1,extreme\n")
    result = await holder.reload("test")
    assert not result.ok and "criticality must be one of" in str(result.errors[0])
    assert holder.current.inventory.get("sw1").site == "lyo1"  # the previous pair keeps serving
