"""YAML loading: the fast loader reads every file exactly as the position-recording one does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator import yamlfile

pytestmark = pytest.mark.skipif(not yamlfile._lib().fast, reason="PyYAML was built without libyaml")


def _plain(v: Any) -> Any:
    """Values and every position, as plain data to compare."""
    if isinstance(v, yamlfile.YamlMap):
        return (
            "map",
            str(v.position),
            [(k, str(v.where(k)), str(v.where_value(k)), _plain(x)) for k, x in v.items()],
        )
    if isinstance(v, yamlfile.YamlList):
        return ("list", str(v.position), [str(p) for p in v.item_positions], [_plain(x) for x in v])
    return (type(v).__name__, v)


def both(text: str) -> tuple[Any, Any]:
    def run(f: Any) -> Any:
        try:
            return _plain(f(text, "f.yaml"))
        except yamlfile.YamlError as e:
            return ("error", str(e))

    return run(yamlfile.loads), run(yamlfile._checked_load)


SCALARS = st.sampled_from(
    ["x", "'quoted'", '"1"', "1", "-2", "0x1f", "1.5", ".inf", "true", "no", "null", "~", "",
     "2026-01-01", "2026-01-01T10:00:00Z", "1m", "a b", "'<<'", "=", "!!str 5", "&a x", "*a", "[]", "{}"]
)  # fmt: skip
KEYS = st.sampled_from(["a", "b", "1", "true", "null", "'k'", "<<", "? [x]"])


def _mapping(kvs: list[tuple[str, list[str]]]) -> list[str]:
    if not kvs:
        return ["{}"]
    return [line for k, c in kvs for line in [f"{k}:", *(f"  {x}" for x in c)]]


def _sequence(items: list[list[str]]) -> list[str]:
    if not items:
        return ["[]"]
    return [line for c in items for line in [f"- {c[0]}", *(f"  {x}" for x in c[1:])]]


def documents() -> st.SearchStrategy[str]:
    """Block-style documents of mappings, lists and scalars, including what the fast loader
    hands over (duplicate and merge keys, anchors, tags, complex keys, bad scalars)."""

    def block(children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
        return st.one_of(
            st.lists(st.tuples(KEYS, children), max_size=4).map(_mapping),
            st.lists(children, max_size=3).map(_sequence),
        )

    leaf = SCALARS.map(lambda s: [s])
    return st.recursive(leaf, block, max_leaves=12).map(lambda lines: "\n".join(lines) + "\n")


@settings(max_examples=200, deadline=None)
@given(documents())
def test_fast_and_checked_loaders_agree_on_values_positions_and_errors(text: str) -> None:
    fast, checked = both(text)
    assert fast == checked


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # duplicate key
        "a: [1, 2\n",  # unclosed flow sequence
        "a: b\n---\nc: d\n",  # two documents
        "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n",  # anchors and merge keys
        "a: \x07\n",  # a control character
        "a: !!int '5'\n",
        "- x\n- {b: [1, {c: d}]}\n",
        "",
    ],
)
def test_what_the_fast_loader_leaves_to_the_checked_one_comes_out_the_same(text: str) -> None:
    fast, checked = both(text)
    assert fast == checked


def test_positions_are_exact_without_being_recorded_up_front() -> None:
    doc = yamlfile.loads("rules:\n  - name: a\n    match: {type: x}\n", "r.yaml")
    item = doc["rules"][0]
    assert item._position is None  # nothing made yet
    assert str(doc["rules"].item_positions[0]) == "r.yaml:2:5"
    assert str(item.where("match")) == "r.yaml:3:5"
    assert str(item["match"].where_value("type")) == "r.yaml:3:19"


def _values(v: Any) -> Any:
    """Values only, mappings and lists of any class alike."""
    if isinstance(v, dict):
        return ("map", [(k, _values(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [_values(x) for x in v])
    return (type(v).__name__, v)


def _item_starts(doc: Any) -> list[str]:
    """Where each mapping in a list under a top-level key starts (what loads_bare keeps)."""
    if not isinstance(doc, dict):
        return []
    return [
        str(item.position)
        for value in doc.values()
        if isinstance(value, list)
        for item in value
        if isinstance(item, dict)
    ]


@settings(max_examples=200, deadline=None)
@given(documents())
def test_the_bare_loader_gives_the_same_values_or_hands_over(text: str) -> None:
    try:
        checked = yamlfile._checked_load(text, "f.yaml")
    except yamlfile.YamlError:
        checked = ValueError  # never a value where the checked loader finds an error
    try:
        bare = yamlfile.loads_bare(text, "f.yaml")
    except yamlfile.NotBare:
        return  # `loads` reads it
    assert _values(bare) == _values(checked)
    assert _item_starts(bare) == _item_starts(checked)


def test_the_bare_loader_keeps_only_where_each_rule_starts() -> None:
    text = "rules:\n  - name: a\n    match: {type: x}\n  - {name: b, on_fire: [{emit: {type: y}}]}\n"
    doc = yamlfile.loads_bare(text, "r.yaml")
    assert doc == yamlfile.loads(text, "r.yaml")
    first, second = doc["rules"]
    assert (str(first.position), str(second.position)) == ("r.yaml:2:5", "r.yaml:4:5")
    assert not first.placed and yamlfile.loads(text, "r.yaml")["rules"][0].placed
    assert str(first.where("match")) == str(first.where_value("match")) == "r.yaml:2:5"
    assert type(doc) is dict and type(first["match"]) is dict and type(second["on_fire"][0]) is dict
    for broken in ("rules: [\n", "a: 1\na: 2\n", "x: &a 1\ny: *a\n"):
        with pytest.raises(yamlfile.NotBare):
            yamlfile.loads_bare(broken, "r.yaml")


@pytest.mark.parametrize("sign", ["", "-", "+"])
def test_an_integer_longer_than_python_reads_is_an_error_with_its_place(sign: str) -> None:
    text = f"limits:\n  max: {sign}{'1' * 4_301}\n  ok: {'1' * 4_300}\n"
    with pytest.raises(yamlfile.YamlError) as info:
        yamlfile.loads(text, "c.yaml")
    assert str(info.value) == "c.yaml:2:8: integer of 4301 digits is too large"
    with pytest.raises(yamlfile.NotBare):
        yamlfile.loads_bare(text, "c.yaml")
