"""Runs every rule test shipped in rules/tests (what `correlator rules test rules/tests` does in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.rules.testing import run_test_file

TESTS = sorted((Path(__file__).resolve().parents[3] / "rules" / "tests").glob("*_test.yaml"))


def test_every_shipped_rule_file_has_tests():
    covered = {p.name.removesuffix("_test.yaml") for p in TESTS}
    assert {"snmp", "alertmanager", "mqtt", "noise"} <= covered


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_shipped_rule_tests_pass(path):
    result = run_test_file(path)
    assert not result.errors, result.errors
    failures = {c.name: c.problems for c in result.cases if not c.ok}
    assert not failures
    assert result.cases
