"""Maintenance stage throughput: events per second through MaintenanceStage with many change windows.

    .venv/bin/python bench/maintenance.py [--changes 1000] [--events 200000] [--batch 5000] [--covered 0.1]

`changes` approved changes (one CI each, 3 dependents each in the dependency map) cover the run;
a fraction `covered` of the events hit one of their CIs (half directly: suppressed; half on a
dependent: tagged), the rest are on other hosts. Prints events/s, batch latency percentiles, RSS.
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

from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.changes.stage import MaintenanceStage
from correlator.changes.topology import DependencyMap
from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.pipeline import StageContext
from correlator.records.sqlite import SqliteRecordStore

T0 = 1_800_000_000.0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(T0)
        deps = DependencyMap({f"ci-{i}": [f"dep-{i}-{j}" for j in range(3)] for i in range(args.changes)})
        records = SqliteRecordStore(Path(tmp) / "records.db")
        await records.open()
        svc = ChangeService(records, ChangeSettings(dependencies=deps), clock)
        await svc.open()
        for i in range(args.changes):
            c = await svc.create(
                "bench", {"title": f"c{i}", "start": T0, "end": T0 + 86400, "cis": [f"ci-{i}"]}
            )
            await svc.act(c.id, "approve", "bench")
        stage = MaintenanceStage(svc)
        every = max(1, round(1 / args.covered)) if args.covered else 0
        events = []
        for n in range(args.events):
            if every and n % every == 0:
                i = n % args.changes
                host = f"ci-{i}" if (n // every) % 2 == 0 else f"dep-{i}-{n % 3}"
            else:
                host = f"host-{n % 5000}"
            events.append(Event(f"e{n}", T0 + n * 0.001, T0, "bench", host, "linkDown", Severity.MAJOR))
        latencies = []
        start = time.perf_counter()
        aside = 0
        for i in range(0, len(events), args.batch):
            ctx = StageContext(clock, live=False)
            t = time.perf_counter()
            await stage(events[i : i + args.batch], ctx)
            latencies.append(time.perf_counter() - t)
            aside += len(ctx.set_aside)
        elapsed = time.perf_counter() - start
        await records.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.events} events, {args.changes} change windows, {args.covered:.0%} covered ({aside} suppressed)"
    )
    print(f"{args.events / elapsed:,.0f} events/s; batch of {args.batch}: p50 {q[49] * 1e3:.2f} ms, "
          f"p99 {q[98] * 1e3:.2f} ms; max RSS {rss:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=1000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--covered", type=float, default=0.1)
    asyncio.run(main(p.parse_args()))
