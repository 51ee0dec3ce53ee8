"""Incident stage throughput: IncidentRequests per second through IncidentStage on SQLite or PostgreSQL.

    .venv/bin/python bench/incidents.py [--keys 1000] [--requests 100000] [--batch 500] [--dsn postgresql://...]

A storm: `keys` correlation keys, requests spread round-robin over them (open, then updates),
applied in pipeline batches on a virtual clock. Prints requests/s, batch latency percentiles, RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.incidents.backend import create_store
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.stage import IncidentStage
from correlator.pipeline import StageContext
from correlator.responses import IncidentRequest

T0 = 1_800_000_000.0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(T0)
        svc = IncidentService(create_store(args.dsn, Path(tmp)), parse_settings({}), clock)
        await svc.open()
        stage = IncidentStage(svc)
        sev = [Severity.MINOR, Severity.MAJOR, Severity.WARNING, Severity.CRITICAL]
        reqs = []
        for i in range(args.requests):
            k = i % args.keys
            ev = Event(f"e{i}", T0 + i / 1000, T0, "bench", f"host{k}", "IF-MIB::linkDown", sev[i % 4])
            reqs.append(IncidentRequest("open" if i < args.keys else "update", f"k{k}", ev, "bench"))
        lat: list[float] = []
        t0 = time.perf_counter()
        for start in range(0, len(reqs), args.batch):
            batch = reqs[start : start + args.batch]
            clock.advance_to(batch[-1].event.time)
            ctx = StageContext(clock, live=False, responses=list(batch))
            b0 = time.perf_counter()
            await stage([r.event for r in batch], ctx)
            lat.append(time.perf_counter() - b0)
        elapsed = time.perf_counter() - t0
        await svc.close()
    q = statistics.quantiles(lat, n=100)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "postgresql" if args.dsn else "sqlite"
    print(f"backend={backend} keys={args.keys} requests={args.requests} batch={args.batch}")
    p50, p99 = q[49] * 1000, q[98] * 1000
    print(f"{args.requests / elapsed:,.0f} requests/s; batch latency p50={p50:.1f}ms p99={p99:.1f}ms")
    print(f"max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--dsn", default=None)
    asyncio.run(main(p.parse_args()))
