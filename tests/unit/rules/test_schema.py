"""The JSON Schema printed by `correlator rules schema` agrees with the parser."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from correlator.rules.loader import rule_files
from correlator.rules.schema import rules_schema
from tests.unit.rules.helpers import ruleset

RULES = Path(__file__).resolve().parents[3] / "rules"


@pytest.fixture(scope="module")
def validator():
    schema = rules_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", rule_files(RULES), ids=lambda p: p.name)
def test_shipped_rule_files_validate(validator, path):
    validator.validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    "text",
    [
        "rules: [{name: a, dorp: true}]",
        "rules: [{name: a, drop: 'yes'}]",
        "rules: [{drop: true}]",
        "rules: [{name: a, match: {host: {regexp: x}}, drop: true}]",
        "rules: [{name: a, dedup: {window: 5 minutes}}]",
        "rules: [{name: a, rate_limit: {max: 0, per: 1m}}]",
        "rules: [{name: a, kind: nonsense}]",
        "rule: []",
    ],
)
def test_what_the_parser_rejects_the_schema_rejects(validator, text):
    with pytest.raises(Exception):  # noqa: B017 - any RuleError(s)
        ruleset(text)
    assert list(validator.iter_errors(yaml.safe_load(text)))


@pytest.mark.parametrize(
    "text",
    [
        "rules: [{name: a, match: {attributes.x: {gt: 1, lt: 5}, any: [{host: a}, {not: {host: b}}]},"
        " drop: true}]",
        "rules: [{name: a, set: {attributes.n: 5, message: '{host}'}, classify: {severity: major}}]",
        "rules: [{name: a, dedup: 5m, rate_limit: {key: '{host}', max: 3, per: 10s}, stop: true}]",
        "rules: [{name: a, inventory: {fields: [site]}, rename: x}]",
    ],
)
def test_what_the_parser_accepts_the_schema_accepts(validator, text):
    ruleset(text)
    validator.validate(yaml.safe_load(text))
