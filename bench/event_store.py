"""Event store write cost: Alertmanager-like events through SqliteEventStore.write, in-process.

    .venv/bin/python bench/event_store.py [--events 200000] [--batch 2400] [--ids random,ordered]
                                          [--checkpoint-mib 16] [--hard-mib 64] [--dir DIR]

Writes `events` events in batches of `batch` (the runner's batch under webhook load) into a new
file, once per kind of id: `random` (hashes, as Alertmanager's fingerprints make them) and
`ordered` (time-ordered, as the daemon's own ids). The batches are made before the clock starts.
Prints, per kind: µs per event of wall time and of CPU (the whole process: event loop, store
thread and checkpointer), the p50, p99 and max of one batch's write, the WAL file's peak size and
the checkpoints run beside the writer and the writes that waited for one.
The wall clock of a shared machine is noisy: compare runs back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from correlator.event import Event, Severity, new_id
from correlator.store.sqlite import SqliteEventStore

T0 = 1_800_000_000.0
TYPES = ("HighCPU", "DiskFull", "InstanceDown")


def event(i: int, ids: str) -> Event:
    ident = hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest() if ids == "random" else new_id()
    host, device = f"node{i % 2000}", f"dev{i // 2000}"
    labels = {"alertname": TYPES[i % 3], "instance": f"{host}:9100", "job": "node", "severity": "warning"}
    attributes = {"labels": {**labels, "device": device}, "status": "firing", "fingerprint": ident[:16]}
    t = T0 + i * 1e-3
    return Event(
        ident, t, t, "webhook:prometheus", host, TYPES[i % 3], Severity.WARNING, device, "on node", attributes
    )


async def run(args: argparse.Namespace, ids: str, directory: Path) -> dict[str, Any]:
    path = directory / f"events-{ids}.db"
    kw: dict[str, Any] = {}
    if args.checkpoint_mib is not None:
        kw = {"checkpoint_bytes": int(args.checkpoint_mib * 2**20), "hard_bytes": int(args.hard_mib * 2**20)}
    store = SqliteEventStore(path, **kw)
    await store.open()
    events = [event(i, ids) for i in range(args.events)]
    batches = [events[k : k + args.batch] for k in range(0, len(events), args.batch)]
    wal = Path(f"{path}-wal")
    checkpoints = getattr(store, "checkpoints", None)  # None: a store without a checkpointer
    times: list[float] = []
    waited: list[float] = []  # the writes that waited for a checkpoint
    peak = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for batch in batches:
        stalls = checkpoints.stalls if checkpoints is not None else 0
        b0 = time.perf_counter()
        await store.write(batch)
        times.append(time.perf_counter() - b0)
        if checkpoints is not None and checkpoints.stalls > stalls:
            waited.append(times[-1])
        peak = max(peak, wal.stat().st_size if wal.exists() else 0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "wall": wall / args.events * 1e6,
        "cpu": cpu / args.events * 1e6,
        "p50": statistics.median(times) * 1e3,
        "p99": statistics.quantiles(times, n=100, method="inclusive")[98] * 1e3
        if len(times) > 1
        else times[0] * 1e3,
        "max": max(times) * 1e3,
        "peak": peak / 2**20,
        "checkpoints": checkpoints.checkpoints if checkpoints is not None else "-",
        "stalls": f"{len(waited)} (mean {statistics.fmean(waited) * 1e3:.1f} ms)" if waited else "0",
    }
    await store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=2400)
    p.add_argument("--ids", default="random,ordered", help="comma-separated: random, ordered")
    p.add_argument("--checkpoint-mib", type=float, help="WAL not yet copied that starts a checkpoint")
    p.add_argument(
        "--hard-mib",
        type=float,
        default=64.0,
        help="with --checkpoint-mib: WAL size at which the writer waits",
    )
    p.add_argument("--dir", type=Path, help="where to make the files (default: a temporary directory)")
    args = p.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-event-store-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"{args.events} events in batches of {args.batch}, pid {os.getpid()}")
    for ids in args.ids.split(","):
        r = await run(args, ids, directory)
        print(
            f"{ids:8} {r['wall']:6.1f} µs/event wall {r['cpu']:6.1f} CPU;"
            f" batch p50 {r['p50']:6.1f} ms p99 {r['p99']:6.1f} max {r['max']:6.1f};"
            f" WAL peak {r['peak']:5.1f} MiB; checkpoints {r['checkpoints']}, writer waited {r['stalls'] if r['checkpoints'] != '-' else '-'}"
        )
    if args.dir is None:
        directory.rmdir()


if __name__ == "__main__":
    asyncio.run(main())
