"""Whatever an operator types, the compiler answers with RuleError(s), never another exception, and
compiled matchers and templates never raise on whatever data events carry."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.rules.errors import RuleError, RuleErrors
from correlator.rules.matchers import OPERATORS, compile_matcher
from correlator.rules.templates import compile_template
from tests.unit.rules.helpers import ev, ruleset

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False), st.text(max_size=12)
)
keys = st.sampled_from(
    [
        "host",
        "type",
        "severity",
        "resource",
        "attributes.a",
        "attributes.a.b",
        "all",
        "any",
        "not",
        "hots",
        "x.y",
        *list(OPERATORS),
    ]
)
specs = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=12,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(spec=specs, attrs=st.dictionaries(st.sampled_from(["a", "b"]), values, max_size=2))
def test_matcher_compiler_and_matchers_never_crash(spec, attrs):
    try:
        m = compile_matcher(spec)
    except (RuleError, RuleErrors):
        return
    assert m(ev(attributes=attrs)) in (True, False)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="{}|ab.ts hor", max_size=20),
    attrs=st.dictionaries(st.just("a"), values, max_size=1),
)
def test_templates_never_crash(text, attrs):
    try:
        t = compile_template(text)
    except RuleError:
        return
    assert isinstance(t(ev(attributes=attrs)), str)


rule_values = st.one_of(
    scalars, st.dictionaries(st.sampled_from(["window", "key", "max", "per", "severity"]), scalars)
)


@settings(max_examples=200, deadline=None)
@given(
    rule=st.dictionaries(
        st.sampled_from(
            ["name", "drop", "dedup", "set", "classify", "rename", "rate_limit", "stop", "kind", "inventory"]
        ),
        rule_values,
    )
)
def test_rule_compiler_never_crashes(rule):
    import orjson

    with contextlib.suppress(RuleError, RuleErrors):
        ruleset("rules: " + orjson.dumps([rule]).decode())
