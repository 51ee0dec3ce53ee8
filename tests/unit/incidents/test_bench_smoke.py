"""bench/incidents.py still runs, both ways (tiny sizes; the figures themselves are never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "incidents.py"


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_stage_run_prints_cpu_per_incident_for_the_loop_and_each_store_thread() -> None:
    out = run("--stage", "--requests", "2000", "--repeat", "1")
    assert re.search(r"incidents stage: loop [\d.]+ µs, incident store thread [\d.]+ µs per incident", out), (
        out
    )
    assert re.search(r"problems stage:  loop [\d.]+ µs, record store thread [\d.]+ µs per incident", out), out


def test_the_storm_run_prints_throughput_and_peak_memory() -> None:
    out = run("--keys", "100", "--requests", "1000", "--batch", "100")
    assert "requests/s" in out and re.search(r"max RSS [1-9]\d* MiB", out), out
