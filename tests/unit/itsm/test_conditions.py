"""Known-error conditions: the rules' `match:` language, errors without a file position."""

from __future__ import annotations

import pytest

from correlator.event import Event, Severity
from correlator.problems.conditions import ConditionError, compile_conditions


def ev(**kw) -> Event:
    base = {"id": "e", "time": 1.0, "received": 1.0, "source": "snmp", "host": "core-sw1", "type": "linkDown"}
    return Event(**{**base, **kw})


@pytest.mark.parametrize(
    ("spec", "event", "expected"),
    [
        ({"host": "core-sw1"}, ev(), True),
        ({"host": ["edge-1", "core-sw1"]}, ev(), True),
        ({"host": {"glob": "core-*"}, "type": {"regex": "^link"}}, ev(), True),
        ({"host": {"glob": "edge-*"}}, ev(), False),
        ({"severity": {"ge": "minor"}}, ev(severity=Severity.MAJOR), True),
        ({"severity": {"ge": "minor"}}, ev(severity=Severity.WARNING), False),
        ({"attributes.ifIndex": {"equals": 3}}, ev(attributes={"ifIndex": "3"}), True),
        ({"attributes.ifIndex": "3"}, ev(attributes={"ifIndex": 3}), True),
        ({"attributes.value": {"gt": 80, "le": 90}}, ev(attributes={"value": "85.5"}), True),
        ({"attributes.value": {"gt": 80}}, ev(attributes={"value": "high"}), False),
        ({"attributes.incident.rule": "flap"}, ev(attributes={"incident": {"rule": "flap"}}), True),
        ({"attributes.missing": {"exists": False}}, ev(), True),
        ({"attributes.alias": {"missing": True}}, ev(attributes={"alias": ""}), True),
        ({"resource": {"not_equals": "Gi0/1"}}, ev(), True),
        ({"any": [{"host": "x"}, {"type": "linkDown"}]}, ev(), True),
        ({"all": [{"host": "core-sw1"}, {"type": "linkUp"}]}, ev(), False),
        ({"not": {"host": {"regex": "^lab-"}}}, ev(), True),
        ({}, ev(), True),
    ],
)
def test_conditions_match_like_rule_matchers(spec, event, expected):
    assert compile_conditions(spec)(event) is expected


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"hostname": "x"}, "^unknown field 'hostname' (did you mean 'host'?)"),
        ({"host": {"regexp": "x"}}, "^unknown operator 'regexp' (did you mean 'regex'?)"),
        ({"host": {"regex": "("}}, "^host: invalid regex"),
        ({"any": []}, "^'any' must be a non-empty list"),
        ({"attributes.value": {"gt": "high"}}, "^attributes.value: 'gt' takes a number"),
        ({"severity": {"ge": "huge"}}, "'ge' takes a severity"),
        ([1], "^'match' must be a mapping"),
        ({"host": {"regexp": "x"}, "type": {"globb": "y"}}, "'regexp'.*; unknown operator 'globb'"),
    ],
)
def test_invalid_conditions_say_where(spec, error):
    with pytest.raises(
        ConditionError, match=error.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        compile_conditions(spec)
