"""A rule's signature (a reload keeps an engine whose signature is unchanged) is equal exactly when
the printed mapping, the signature's former form, is."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlation.kinds import rule_signature
from correlator.yamlfile import loads, loads_bare

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=16),
    st.sampled_from(["", "a", "1", "True", "é", "\x00", "'"]),
    st.just(datetime.date(2020, 1, 1)),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=6,
)
_rules = st.dictionaries(st.sampled_from(["name", "match", "count"]), _values, max_size=3)


@settings(max_examples=300, deadline=None)
@given(_rules, _rules, st.one_of(st.none(), st.text(max_size=2)), st.one_of(st.none(), st.text(max_size=2)))
def test_signatures_are_equal_exactly_when_the_printed_rules_are(
    a: dict[str, Any], b: dict[str, Any], xa: Any, xb: Any
) -> None:
    same = repr((a, xa)) == repr((b, xb))
    assert (rule_signature(a, xa) == rule_signature(b, xb)) == same  # type: ignore[arg-type]


def test_a_rule_has_one_signature_with_positions_or_without() -> None:
    text = "rules:\n  - name: a\n    match: {type: x, severity: [1, 1.0, true]}\n    on_fire: [{emit: {type: y}}]\n"
    placed, bare = loads(text, "f")["rules"][0], loads_bare(text, "f")["rules"][0]
    assert type(placed["match"]) is not dict and type(bare["match"]) is dict
    assert rule_signature(placed, None) == rule_signature(bare, None)
    assert rule_signature(placed, None) != rule_signature(placed, [])
