"""The operators' commands of the README run as typed, from the repository root, on the shipped
sample recording."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.support.daemon import REPO

pytestmark = pytest.mark.integration


def correlator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_rules_explain_and_replay_on_the_sample_recording():
    r = correlator("rules", "explain", "examples/recording.ndjson")
    assert r.returncode == 0, r.stderr
    assert "incident open 'link-down:core-sw1/Gi0/1'" in r.stdout
    r = correlator("replay", "examples/recording.ndjson", "--json")
    assert r.returncode == 0, r.stderr
    summary = orjson.loads(r.stdout)
    assert summary["events_in"] == 6 and summary["invalid"] == 0
    assert summary["top_types"]["link.down"] == 1  # the link that stayed down
