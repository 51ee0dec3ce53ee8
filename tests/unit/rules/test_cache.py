"""Reloads compile only the files that changed, and give exactly the set (and errors) a first load gives."""

from __future__ import annotations

from pathlib import Path

from correlator.rules.errors import RuleErrors
from correlator.rules.loader import load_rules
from correlator.rules.reload import RulesHolder


def level2(name: str, n: int) -> str:
    rules = "\n".join(
        f"  - {{name: {name}{i}, kind: threshold, match: {{type: {name}{i}}}, count: 3, within: 1m}}"
        for i in range(n)
    )
    return f"rules:\n{rules}\n"


def level1(name: str, n: int, extra: str = "") -> str:
    rules = "\n".join(
        f"  - {{name: {name}{i}, match: {{type: {name}{i}}}, set: {{attributes.f: {i}}}{extra}}}"
        for i in range(n)
    )
    return f"rules:\n{rules}\n"


def write(d: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (d / name).write_text(text)


def shape(holder: RulesHolder) -> list[tuple[str, str, int, str]]:
    return [(r.info.name, r.info.kind, r.info.order, str(r.info.position)) for r in holder.current.rules]


def fresh(d: Path) -> list[tuple[str, str, int, str]]:
    return [(r.info.name, r.info.kind, r.info.order, str(r.info.position)) for r in load_rules(d).rules]


def test_a_reload_compiles_only_the_changed_file_and_keeps_the_other_rules(tmp_path):
    write(tmp_path, {f"{i:02d}.yaml": level2(f"f{i}x", 5) for i in range(10)})
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    assert holder._cache.compiled == 10
    before = {r.info.name: r.compiled for r in holder.current.rules}
    (tmp_path / "03.yaml").write_text(level2("f3x", 5).replace("count: 3", "count: 4"))
    assert holder.reload_now("test").ok
    assert holder._cache.compiled == 1
    assert shape(holder) == fresh(tmp_path)
    after = {r.info.name: r.compiled for r in holder.current.rules}
    assert after["f2x0"] is before["f2x0"]  # unchanged: the very engine, with its state
    assert after["f3x0"] is not before["f3x0"]


def test_rules_added_before_a_file_renumber_it_as_a_first_load_would(tmp_path):
    write(tmp_path, {"a.yaml": level2("a", 2), "b.yaml": level2("b", 3), "c.yaml": level1("c", 3)})
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    (tmp_path / "a.yaml").write_text(level2("a", 4))
    assert holder.reload_now("test").ok
    # a: changed; b: level 2 only, renumbered from the cache; c: level 1 carries its numbers: compiled
    assert holder._cache.compiled == 2
    assert shape(holder) == fresh(tmp_path)
    orders = [r.info.order for r in holder.current.filters]
    assert orders == [7, 8, 9]


def test_errors_are_those_of_a_first_load(tmp_path):
    write(tmp_path, {"a.yaml": level2("a", 2), "b.yaml": level1("b", 2)})
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    (tmp_path / "b.yaml").write_text(level1("b", 2) + "  - {name: a1, match: {type: x}}\n  - {nme: x}\n")
    result = holder.reload_now("test")
    assert not result.ok
    try:
        load_rules(tmp_path)
    except RuleErrors as e:
        expected = [str(x) for x in e.errors]
    assert [str(x) for x in result.errors] == expected
    assert any("duplicate rule name 'a1' (first defined at" in x for x in expected)
    # the broken file is fixed: only it is compiled, the rest still comes from the cache
    (tmp_path / "b.yaml").write_text(level1("b", 3))
    assert holder.reload_now("test").ok
    assert holder._cache.compiled == 1
    assert shape(holder) == fresh(tmp_path)


def test_stateful_level1_rules_and_inventory_changes_are_compiled_again(tmp_path):
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("host,site\nsw1,paris\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, {"a.yaml": level1("a", 2, ", dedup: {window: 1m}"), "b.yaml": level1("b", 2)})
    holder = RulesHolder(rules, inventory)
    holder.load_initial()
    assert holder.reload_now("test").ok
    assert holder._cache.compiled == 1  # a.yaml: its de-duplication state moves to new objects
    inventory.write_text("host,site\nsw1,lyon\n")
    assert holder.reload_now("test").ok
    assert holder._cache.compiled == 2
