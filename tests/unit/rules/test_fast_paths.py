"""The shortcuts level 1 takes per event give what the general code gives: the severity's text read
from a table, presence and equality tested without helper calls, a template's literal default,
classify and `set` of an attribute without the general setter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Event, Severity
from correlator.inventory import Inventory
from correlator.rules.fields import compile_field, compile_setter
from correlator.rules.loader import compile_texts
from correlator.rules.matchers import compile_matcher
from correlator.rules.operators import scalar_text
from correlator.rules.registry import BuildContext
from correlator.rules.templates import compile_template, compile_value

VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "x", "1", "2.0", "true", "application"]),
    st.integers(-2, 2),
    st.sampled_from([1.0, 2.5, True, False]),
    st.sampled_from([[], ["x"], {}, {"a": "x"}]),
)


def _event(value: Any, severity: Severity = Severity.MAJOR) -> Event:
    attrs = {} if value is None else {"x": value, "labels": {"x": value}}
    return Event("e", 1.0, 1.0, "webhook:a", "h1", "t", severity, "r", "", attrs)


def test_the_severity_reads_as_plain_text() -> None:
    get = compile_field("severity")
    for sev in Severity:
        got = get(_event(None, sev))
        assert got == sev.value and type(got) is str


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_presence_and_equality_agree_with_the_general_rules(value: Any) -> None:
    for path in ("attributes.x", "attributes.labels.x", "attributes.nothing"):
        ev = _event(value)
        v = compile_field(path)(ev)
        present = v is not None and v != ""
        assert compile_matcher({path: {"exists": True}})(ev) is present
        assert compile_matcher({path: {"missing": True}})(ev) is not present
        for text in ("x", "1", "true"):
            assert compile_matcher({path: text})(ev) is (scalar_text(v) == text)


@settings(max_examples=100, deadline=None)
@given(VALUES)
def test_a_literal_default_renders_as_a_default_with_placeholders(value: Any) -> None:
    ev = _event(value)
    for path in ("attributes.x", "attributes.labels.x", "attributes.nothing"):
        literal = compile_template(f"{{{path}|application}}")
        general = compile_template(f"{{{path}|{{attributes.absent|application}}}}")
        assert literal(ev) == general(ev)
        assert compile_template(f"a-{{{path}}}")(ev) == compile_template(f"a-{{{path}|}}")(ev)


def _rule(actions: dict[str, Any]) -> Any:
    text = orjson.dumps({"rules": [{"name": "r", "match": {}, **actions}]}).decode()
    return compile_texts({"r.yaml": text}, BuildContext(Path("."), Inventory()))[0].compiled


@settings(max_examples=100, deadline=None)
@given(VALUES)
def test_classify_and_set_of_an_attribute_as_the_general_setter_does(value: Any) -> None:
    category = "{severity}/{attributes.labels.x|application}"  # rendered after the severity is set
    ev = _event(value, Severity.INFO)
    _rule({"classify": {"severity": "critical", "category": category}}).apply(ev, [])
    expected = _event(value, Severity.INFO)
    expected.severity = Severity.CRITICAL
    compile_setter("attributes.category")(expected, compile_template(category)(expected))
    assert ev.to_dict() == expected.to_dict()

    ev = _event(value)
    _rule({"set": {"attributes.y": "{attributes.x|none}", "attributes.a.b": "{host}"}}).apply(ev, [])
    expected = _event(value)
    compile_setter("attributes.y")(expected, compile_value("{attributes.x|none}")(expected))  # a value
    compile_setter("attributes.a.b")(expected, "h1")
    assert ev.to_dict() == expected.to_dict()
