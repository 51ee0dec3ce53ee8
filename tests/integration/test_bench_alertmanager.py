"""bench/alertmanager.py still runs end to end (tiny sizes, one second each; figures never asserted)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "alertmanager.py"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package `wrk`) is not installed")
def test_bench_prints_both_servers_and_the_ratio() -> None:
    args = [
        sys.executable,
        str(BENCH),
        "--seconds",
        "1",
        "--alerts",
        "400",
        "--per-request",
        "100",
        "--workers",
        "0,1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert any(line.startswith("correlator webhook") and "alerts/s" in line for line in lines), done.stdout
    assert any("http.workers 1" in line and "alerts/s" in line for line in lines), done.stdout
    assert any("event loop" in line and "µs per alert" in line and "workers CPU" in line for line in lines)
    if shutil.which("prometheus-alertmanager") is None:
        assert any("alertmanager: not installed" in line for line in lines)
    else:
        assert any(line.startswith("alertmanager /api/v2/alerts") for line in lines), done.stdout
        assert any("ratio to alertmanager" in line for line in lines), done.stdout
