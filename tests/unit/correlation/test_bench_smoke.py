"""bench/correlate.py still runs (tiny sizes; the figures themselves are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "correlate.py"


def test_bench_runs_and_prints_a_line_per_configuration() -> None:
    args = [sys.executable, str(BENCH), "--rules", "8", "--keys", "200", "--events", "2000"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    [line] = done.stdout.strip().splitlines()
    assert "events/s" in line and "B/key" in line and "snapshot" in line
