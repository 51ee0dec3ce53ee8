"""Templates and field paths: rendering, defaults, escapes, nested attributes, errors."""

from __future__ import annotations

import operator
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Event
from correlator.rules.errors import RuleError
from correlator.rules.fields import PLAIN_TEXT_FIELDS, READABLE, compile_field, compile_setter
from correlator.rules.templates import (
    _parse_parts,
    compile_template,
    compile_value,
    parse_template,
    template_fields,
)
from correlator.yamlfile import Position
from tests.unit.rules.helpers import ev

E = ev(
    "sw1",
    "IF-MIB::linkDown",
    severity="major",
    attributes={"ifDescr": "Gi0/1", "ifIndex": 3, "x": {"y": 1.0}},
)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{host}:{attributes.ifDescr}", "sw1:Gi0/1"),
        ("plain", "plain"),
        ("", ""),
        ("{severity}", "major"),
        ("{{literal}} {host}", "{literal} sw1"),
        ("{attributes.missing}", ""),
        ("{attributes.missing|n/a}", "n/a"),
        ("{attributes.missing|{attributes.ifIndex}}", "3"),
        ("{resource|{attributes.nope|{host}}}", "sw1"),
        ("{attributes.x.y}", "1"),
        ("{ host }", "sw1"),
    ],
)
def test_render(text, out):
    assert compile_template(text)(E) == out


def test_a_lone_placeholder_keeps_the_value_type():
    assert compile_value("{attributes.ifIndex}")(E) == 3
    assert compile_value("{attributes.nope}")(E) is None
    assert compile_value("{attributes.nope|{attributes.ifIndex}}")(E) == 3
    assert compile_value("n{attributes.ifIndex}")(E) == "n3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{hots}", "unknown field 'hots' (did you mean 'host'?)"),
        ("{host", "never closed"),
        ("host}", "unmatched '}'"),
        ("{}", "empty placeholder"),
        ("{attributes}", "name the attribute"),
    ],
)
def test_template_errors(text, message):
    with pytest.raises(RuleError) as info:
        compile_template(text)
    assert message in str(info.value)


def test_template_fields():
    assert template_fields("{host}-{attributes.a|{resource}}") == ["host", "attributes.a", "resource"]


def test_field_getters_and_setters():
    e = ev(attributes={})
    assert compile_field("attributes.a.b")(e) is None
    compile_setter("attributes.a.b")(e, 5)
    assert e.attributes == {"a": {"b": 5}}
    compile_setter("severity")(e, "critical")
    assert e.severity.value == "critical"
    compile_setter("host")(e, 42)
    assert e.host == "42"
    with pytest.raises(RuleError, match="cannot be changed"):
        compile_setter("id")


def test_the_plain_text_fields_are_the_text_fields_read_as_they_are():
    # Templates render these and level-2 keys read them without a conversion: each must be text.
    hints = typing.get_type_hints(Event)
    assert {f for f in READABLE if hints[f] is str} == PLAIN_TEXT_FIELDS
    assert all(isinstance(compile_field(f), operator.attrgetter) for f in PLAIN_TEXT_FIELDS)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="{}|ab. ", max_size=14))
def test_the_regex_path_splits_templates_as_the_general_parser(text: str) -> None:
    """parse_template reads most templates with two regular expressions: the parts, or the
    error, are those of the general parser for every text."""

    def run(parse: typing.Callable[[], object]) -> object:
        try:
            return parse()
        except RuleError as e:
            return ("error", str(e))

    where = Position("t.yaml", 3, 7)
    assert run(lambda: parse_template(text, where)) == run(lambda: _parse_parts(text, where))
