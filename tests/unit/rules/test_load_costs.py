"""Load-time shortcuts give what the plain code gives: shared templates, cheaper type checks,
counters made once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlation.core import KeyTable
from correlator.rules.errors import RuleError
from correlator.rules.matchers import is_plain_pin
from correlator.rules.stats import DROP_REASONS, STATS, RuleCounters
from correlator.rules.templates import _compile_parts, compile_template, parse_template
from tests.unit.rules.helpers import ev

EVENTS = [
    ev("sw1", "link.down", severity="major", attributes={"user": "u1", "n": 3, "x": {"y": 1.0}}),
    ev("", "t", attributes={}),
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["{", "}", "|", "host", "attributes.user", "x%", " "]), max_size=8).map("".join)
)
def test_a_shared_template_renders_as_one_compiled_anew(text: str) -> None:
    try:
        fresh = _compile_parts(parse_template(text), None)
    except RuleError as e:
        try:
            compile_template(text)
        except RuleError as again:
            assert again.message == e.message
            return
        raise AssertionError("the shared path accepted what the plain one rejects") from None
    for shared in (compile_template(text), compile_template(text)):  # compiled, then from the cache
        assert [shared(e) for e in EVENTS] == [fresh(e) for e in EVENTS]


def test_a_template_that_is_not_text_is_still_an_error() -> None:
    try:
        compile_template(["{host}"])  # type: ignore[arg-type]
    except RuleError:
        return
    raise AssertionError("a list is not a template")


def _old_is_plain_pin(cond: Any) -> bool:
    if isinstance(cond, Mapping):
        if len(cond) != 1:
            return False
        cond = cond.get("equals", cond.get("in"))
    if isinstance(cond, str):
        return True
    return isinstance(cond, list) and bool(cond) and all(isinstance(v, str) for v in cond)


_SCALAR = st.one_of(st.text(max_size=3), st.integers(), st.booleans(), st.none())
_COND = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["equals", "in", "glob", "regex"]), inner, max_size=2),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(_COND)
def test_plain_pins_are_found_as_before(cond: Any) -> None:
    assert is_plain_pin(cond) == _old_is_plain_pin(cond)


def test_counters_start_at_zero_for_every_drop_reason() -> None:
    c = RuleCounters()
    assert (c.matches, c.errors, list(c.dropped)) == (0, 0, list(DROP_REASONS))
    assert set(c.dropped.values()) == {0}
    assert RuleCounters().dropped is not c.dropped


def test_a_rule_not_counted_yet_keeps_its_own_counters_and_a_counted_one_gets_the_kept() -> None:
    mine = RuleCounters()
    assert STATS.counters("test-load-costs-rule", mine) is mine
    assert STATS.counters("test-load-costs-rule", RuleCounters()) is mine
    STATS.retain(n for n in list(STATS._by_rule) if n != "test-load-costs-rule")


def test_a_key_table_starts_empty_and_bounded() -> None:
    t: KeyTable[int] = KeyTable("r", 2)
    assert (len(t), t.rule, t.max_keys, t.oldest()) == (0, "r", 2, None)
    t.put(("a",), 1)
    t.put(("b",), 2)
    assert t.put(("c",), 3) == (("a",), 1)
