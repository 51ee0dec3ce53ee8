"""`correlator replay` end to end: a generated recording through the shipped rules, as an operator runs it.

Run: .venv/bin/python bench/replay.py [--events 100000] [--rules rules] [-- extra replay options]
Writes a recording of interface, BGP, CPU and noise events on 200 switches (a realistic mix for the
shipped rules: pairs that close as blips, pairs that open incidents, flapping, repeats that
de-duplicate), runs `python -m correlator replay FILE --json` once in a child process and prints
its events/s (the replay's own figure, parse to summary), the wall time of the whole command
and its peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

START = 1_800_000_000.0


def write_recording(path: Path, n: int, seed: int = 14) -> None:
    rnd = random.Random(seed)
    t = START
    with path.open("wb") as f:
        for i in range(n):
            t += rnd.random() * 0.05
            host = f"sw{rnd.randrange(200)}"
            r = rnd.random()
            doc: dict[str, Any]
            if r < 0.5:
                kind = "IF-MIB::linkDown" if rnd.random() < 0.55 else "IF-MIB::linkUp"
                doc = {
                    "host": host,
                    "type": kind,
                    "severity": "major" if kind.endswith("Down") else "clear",
                    "resource": f"Gi0/{rnd.randrange(8)}",
                    "attributes": {"ifIndex": rnd.randrange(1, 9)},
                }
            elif r < 0.6:
                kind = rnd.choice(["BGP4-MIB::bgpBackwardTransition", "BGP4-MIB::bgpEstablished"])
                doc = {
                    "host": host,
                    "type": kind,
                    "severity": "major" if "Backward" in kind else "clear",
                    "attributes": {"bgpPeerRemoteAddr": f"10.0.{rnd.randrange(4)}.1"},
                }
            elif r < 0.8:
                doc = {
                    "host": host,
                    "type": "cpu.utilisation",
                    "severity": "warning",
                    "attributes": {"value": rnd.randrange(100)},
                }
            else:
                doc = {"host": host, "type": "syslog.message", "severity": "info", "message": "noise"}
            doc["time"] = round(t, 3)
            doc["id"] = f"b{i}"
            f.write(orjson.dumps(doc) + b"\n")


def _children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--rules", default="rules")
    p.add_argument("extra", nargs="*", help="more `correlator replay` options (after --)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec.ndjson"
        write_recording(rec, a.events)
        cmd = [sys.executable, "-m", "correlator", "replay", str(rec), "--rules", a.rules, "--json", *a.extra]
        began, cpu0 = time.perf_counter(), _children_cpu()
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - began, _children_cpu() - cpu0
    if r.returncode not in (0, 1):
        sys.exit(f"replay failed ({r.returncode}): {r.stderr}")
    if not r.stdout:
        sys.exit(f"replay printed nothing ({r.returncode}): {r.stderr[-2000:]}")
    doc = orjson.loads(r.stdout)
    summary = doc.get("summary", doc)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux: the one child's peak
    print(
        f"events_in={summary['events_in']} events_out={summary['events_out']} "
        f"replay {summary['events_per_second']} events/s ({summary['elapsed_seconds']} s), "
        f"command wall {wall:.2f} s, CPU {cpu:.2f} s (user + system: steadier than wall time on a shared machine), "
        f"peak RSS {peak:.0f} MiB"
    )
    if "incidents" in doc:
        print(f"incidents opened: {len(doc['incidents'])}")


if __name__ == "__main__":
    main()
