"""Every matcher operator and combinator, on top-level fields and nested attributes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.rules.errors import RuleError, RuleErrors
from tests.unit.rules.helpers import ev, matcher

SW = ev(
    "core-sw1",
    "IF-MIB::linkDown",
    resource="Gi0/1",
    severity="major",
    attributes={
        "ifIndex": 3,
        "ifDescr": "Gi0/1",
        "addr": "10.1.2.3",
        "v6": "fd00::12",
        "v6zone": "fe80::1%eth0",
        "short": "10.1",
        "labels": {"team": "net"},
        "load": "0.75",
    },
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("type: IF-MIB::linkDown", True),
        ("type: IF-MIB::linkUp", False),
        ("type: {equals: IF-MIB::linkDown}", True),
        ("attributes.ifIndex: 3", True),
        ("attributes.ifIndex: '3'", True),  # text compares with a number's text
        ("attributes.load: 0.75", True),  # a number in the rule compares numerically
        ("type: {not_equals: IF-MIB::linkUp}", True),
        ("attributes.nothing: {not_equals: x}", True),  # missing is not equal
        ("host: {regex: core}", True),  # unanchored: search
        ("host: {regex: ^sw}", False),
        ("host: {regex: '^core-sw\\d$'}", True),
        ("attributes.ifIndex: {regex: '^3$'}", True),
        ("host: {in: [core-sw1, core-sw2]}", True),
        ("host: [edge1, edge2]", False),  # a list is 'in'
        ("attributes.ifIndex: {in: [1, 2, 3]}", True),
        ("attributes.ifIndex: {in: ['3']}", True),
        ("resource: {glob: 'Gi0/*'}", True),
        ("resource: {glob: 'Te*'}", False),
        ("attributes.ifIndex: {gt: 2}", True),
        ("attributes.ifIndex: {gt: 3}", False),
        ("attributes.ifIndex: {ge: 3, le: 3}", True),
        ("attributes.load: {lt: 1}", True),  # numeric text is parsed
        ("attributes.ifDescr: {lt: 1}", False),  # non-numeric never compares
        ("attributes.nothing: {gt: 0}", False),
        ("severity: {ge: minor}", True),  # severities compare by rank
        ("severity: {gt: major}", False),
        ("resource: {exists: true}", True),
        ("message: {exists: true}", False),  # empty text counts as missing
        ("message: {missing: true}", True),
        ("attributes.labels.team: {exists: true}", True),
        ("attributes.labels.owner: {missing: true}", True),
        ("attributes.ifIndex.deeper: {missing: true}", True),
        ("attributes.addr: {cidr: 10.0.0.0/8}", True),
        ("attributes.addr: {cidr: [192.168.0.0/16, 10.1.2.0/24]}", True),
        ("attributes.addr: {cidr: 172.16.0.0/12}", False),
        ("attributes.ifDescr: {cidr: 10.0.0.0/8}", False),  # not an address: no match, no error
        ("attributes.v6: {cidr: 'fd00::/8'}", True),
        ("attributes.v6: {cidr: 10.0.0.0/8}", False),
        ("attributes.v6zone: {cidr: 'fe80::/10'}", True),  # a zone index is ignored
        ("attributes.short: {cidr: 10.0.0.0/8}", False),  # '10.1' is not a dotted quad
        ("attributes.labels.team: net", True),
        ("any: [{host: x}, {resource: Gi0/1}]", True),
        ("any: [{host: x}, {resource: y}]", False),
        ("all: [{host: core-sw1}, {resource: Gi0/1}]", True),
        ("all: [{host: core-sw1}, {resource: y}]", False),
        ("not: {host: core-sw1}", False),
        ("not: {any: [{host: a}, {host: b}]}", True),
        ("{}", True),
        ("host: core-sw1\nresource: Gi0/1\nseverity: major\nsource: snmp", True),
        ("host: core-sw1\nresource: Gi0/1\nseverity: major\nsource: mqtt", False),
    ],
)
def test_operator(spec, expected):
    assert matcher(spec)(SW) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hots: x", "1:1: unknown field 'hots' (did you mean 'host'?)"),
        ("host: {regexp: x}", "1:8: unknown operator 'regexp' (did you mean 'regex'?)"),
        ("host: {regex: '('}", "1:15: host: invalid regex '('"),
        ("attributes.x: {gt: abc}", "'gt' takes a number"),
        (
            "severity: {ge: huge}",
            "'ge' takes a severity (critical, major, minor, warning, info, clear), got 'huge'",
        ),
        ("host: {cidr: 10.0.0.0/33}", "'cidr' takes networks"),
        ("host: {exists: yes please}", "'exists' takes true or false"),
        ("host: {in: []}", "'in' takes a non-empty list"),
        ("host:", "no condition given"),
        ("any: {host: x}", "'any' must be a non-empty list"),
        ("attributes: x", "name the attribute"),
        ("regex: x", "'regex' is an operator"),
        ("host.name: x", "field 'host' has no sub-fields"),
    ],
)
def test_bad_spec_is_an_error_with_position(spec, message):
    with pytest.raises(RuleError) as info:
        matcher(spec)
    assert message in str(info.value)
    assert str(info.value).startswith("m.yaml:")


def test_every_error_is_reported_not_just_the_first():
    with pytest.raises(RuleErrors) as info:
        matcher("hots: x\nhost: {regex: '('}\nany: [{tpye: x}]")
    text = str(info.value)
    assert "'hots'" in text and "invalid regex" in text and "'tpye'" in text
    assert len(info.value.errors) == 3


def test_plain_dict_specs_use_the_given_position():
    from correlator.rules.matchers import compile_matcher
    from correlator.yamlfile import Position

    with pytest.raises(RuleError, match=r"^x.yaml:7:3: unknown field"):
        compile_matcher({"nope": 1}, Position("x.yaml", 7, 3))
    assert compile_matcher({"host": "core-sw1"})(SW)


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.text(alphabet="ab:*?[]\n", max_size=4),
    value=st.one_of(st.text(alphabet="ab:*?[]\n", max_size=6), st.integers(-5, 50)),
)
def test_glob_fast_paths_agree_with_fnmatch(prefix, value):
    """A trailing-star glob is a prefix test; every glob answers as fnmatch (case-sensitive) does."""
    import fnmatch

    from correlator.rules.matchers import compile_matcher

    pattern = prefix + "*"
    m = compile_matcher({"attributes.x": {"glob": pattern}})
    text = value if isinstance(value, str) else str(value)
    assert m(ev("h", "t", attributes={"x": value})) is fnmatch.fnmatchcase(text, pattern)
