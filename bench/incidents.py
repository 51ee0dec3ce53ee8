"""Incident stage throughput: IncidentRequests per second through IncidentStage on SQLite or PostgreSQL.

    .venv/bin/python bench/incidents.py [--keys 1000] [--requests 100000] [--batch 500] [--dsn postgresql://...]
    .venv/bin/python bench/incidents.py --stage [--requests 100000] [--batch 500] [--profile FILE]

A storm: `keys` correlation keys, requests spread round-robin over them (open, then updates),
applied in pipeline batches on a virtual clock. Prints requests/s, batch latency percentiles, RSS.

`--stage`: an Alertmanager storm of distinct alerts, as the shipped rules see it (one `open` of
`alert:<fingerprint>` per alert), through IncidentStage and ProblemStage on SQLite with the daemon's
GC settings. Prints µs of CPU per incident opened for each stage on the event loop and for each
store's thread, which the wall clock of a shared machine cannot tell apart.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import peak_rss_mib, thread_cpu_seconds

from collectors.webhook.alertmanager import alert_event, parse_options
from correlator import gctune
from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.incidents.backend import create_store
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.incidents.stage import IncidentStage
from correlator.pipeline import StageContext
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.problems.stage import ProblemStage
from correlator.records.sqlite import SqliteRecordStore
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
            if ctx.pending is not None:  # the batch's commit, as the runner awaits it before the ack
                await ctx.pending
            lat.append(time.perf_counter() - b0)
        elapsed = time.perf_counter() - t0
        await svc.close()
    q = statistics.quantiles(lat, n=100)
    rss = peak_rss_mib(os.getpid())
    backend = "postgresql" if args.dsn else "sqlite"
    print(f"backend={backend} keys={args.keys} requests={args.requests} batch={args.batch}")
    p50, p99 = q[49] * 1000, q[98] * 1000
    print(f"{args.requests / elapsed:,.0f} requests/s; batch latency p50={p50:.1f}ms p99={p99:.1f}ms")
    print(f"max RSS {rss:.0f} MiB")


def storm(n: int, hashed: bool) -> list[IncidentRequest]:
    """What the shipped rule `alert-firing` asks for each of `n` distinct firing alerts. `hashed`:
    fingerprints look like Alertmanager's (a hash, so the keys arrive in no order), else they count
    up as bench/alertmanager.py's do."""
    opts = parse_options({}, "bench", "alertmanager")
    names = ("HighCPU", "DiskFull", "InstanceDown", "HighLatency", "PodCrashLooping", "LinkErrors")
    severities = ("critical", "warning", "warning", "major")
    group = {"receiver": "correlator", "externalURL": "http://alertmanager:9093", "groupKey": "{}:{}"}
    out = []
    for i in range(n):
        labels = {"alertname": names[i % 6], "instance": f"node{i % 2000}:9100", "job": "node",
                  "severity": severities[i % 4], "device": f"dev{i // 2000}"}  # fmt: skip
        fp = hashlib.blake2b(i.to_bytes(8), digest_size=8).hexdigest() if hashed else f"{i:016x}"
        alert = {"status": "firing", "labels": labels, "fingerprint": fp,
                 "annotations": {"summary": f"{labels['alertname']} on {labels['instance']}"},
                 "startsAt": "2027-01-15T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "http://prometheus:9090/graph?g0.expr=up"}  # fmt: skip
        ev = alert_event(alert, "webhook:alertmanager", T0 + i / 1000, opts, group)
        key = f"alert:{ev.fingerprint}"
        out.append(IncidentRequest("open", key, ev, "alert-firing", title=f"{ev.type} on {ev.host}"))
    return out


def _thread_cpu(db: Any) -> float:
    """CPU seconds of an aiosqlite connection's thread so far, read from /proc as every bench does:
    in clock ticks (10 ms, 0.1 µs per incident at the default 100,000). The event loop's share is
    timed per stage call with thread_time, as those calls are shorter than a tick."""
    return thread_cpu_seconds(os.getpid(), db._thread.native_id)


async def stage_main(args: argparse.Namespace) -> None:
    """The least of `--repeat` runs of each figure: the machine's other load only ever adds."""
    runs = [await stage_run(args) for _ in range(args.repeat)]
    opened = runs[0][0]
    loop_inc, inc_thread, loop_prb, rec_thread = (min(r[i] for r in runs) for i in range(1, 5))
    us = 1e6 / opened
    keys = "hashed" if args.hashed else "sequential"
    print(
        f"incidents opened={opened} batch={args.batch} keys={keys} runs={args.repeat} (SQLite, CPU time, least),"
        f" peak RSS {peak_rss_mib(os.getpid()):.0f} MiB"
    )
    print(
        f"incidents stage: loop {loop_inc * us:.2f} µs, incident store thread {inc_thread * us:.2f} µs per incident"
    )
    print(
        f"problems stage:  loop {loop_prb * us:.2f} µs, record store thread {rec_thread * us:.2f} µs per incident"
    )


async def stage_run(args: argparse.Namespace) -> tuple[int, float, float, float, float]:
    gc.unfreeze()  # each run as the first: tune() below freezes what the run set up
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(T0)
        incidents = SqliteIncidentStore(Path(tmp) / "incidents.db")
        records = SqliteRecordStore(Path(tmp) / "records.db")
        svc = IncidentService(incidents, parse_settings({}), clock)
        await svc.open()
        await records.open()
        problems = ProblemService(records, ProblemSettings(), clock, svc)
        await problems.open()
        inc_stage, prb_stage = IncidentStage(svc), ProblemStage(problems)
        reqs = storm(args.requests, args.hashed)
        gctune.tune()
        loop_inc = loop_prb = 0.0
        inc0, rec0 = _thread_cpu(incidents.db), _thread_cpu(records.db)
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        for start in range(0, len(reqs), args.batch):
            batch = reqs[start : start + args.batch]
            clock.advance_to(batch[-1].event.time)
            ctx = StageContext(clock, live=True, responses=list(batch))
            events = [r.event for r in batch]
            t0 = time.thread_time()
            await inc_stage(events, ctx)
            t1 = time.thread_time()
            await prb_stage(events, ctx)
            loop_inc += t1 - t0
            loop_prb += time.thread_time() - t1
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
        await svc.settled()  # the last commits run in the store's thread after the last batch
        inc_thread, rec_thread = _thread_cpu(incidents.db) - inc0, _thread_cpu(records.db) - rec0
        opened = len(svc._by_id)
        await records.close()
        await svc.close()
    return opened, loop_inc, inc_thread, loop_prb, rec_thread


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--dsn", default=None)
    p.add_argument("--stage", action="store_true", help="µs of CPU per incident opened, per stage and thread")
    p.add_argument("--repeat", type=int, default=3, help="with --stage: runs, the least figures printed")
    p.add_argument(
        "--hashed", action="store_true", help="with --stage: hashed fingerprints (random key order)"
    )
    p.add_argument("--profile", default=None, help="with --stage: write a cProfile of the stages here")
    a = p.parse_args()
    asyncio.run(stage_main(a) if a.stage else main(a))
