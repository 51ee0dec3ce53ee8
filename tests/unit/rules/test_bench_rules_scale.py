"""bench/rules_scale.py still runs (tiny sizes; the figures themselves are never asserted), and where
SEC is installed its rules and the correlator's give the same outputs on the generated stream."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "rules_scale.py"


def test_bench_runs_and_prints_its_figures() -> None:
    args = [sys.executable, str(BENCH), "--only", "replay,load", "--rules", "10,30"]
    args += ["--events", "600", "--sec-events", "300", "--load-rules", "200"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    out = done.stdout
    assert out.count("events/s") >= 2 and "rules loaded in" in out and "MiB" in out
    assert "without the parse cache" in out
    if shutil.which("sec"):
        assert out.count("same outputs") == 2, out
    else:
        assert "SEC not installed" in out
