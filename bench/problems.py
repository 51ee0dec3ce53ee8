"""Problem stage cost when incidents recur: each opening after the first few of a signature links the
incident to its problem, one record save each (the problem stage's write path in a recurring storm).

    .venv/bin/python bench/problems.py [--incidents 20000] [--signatures 200] [--batch 500] [--repeat 3]

Incidents are opened in pipeline batches on a virtual clock, `signatures` recurring signatures in
turn, through ProblemService.on_opened on SQLite (no incident service: only the problem side is
measured). Prints µs of CPU per incident on the event loop and on the record store's thread, the
least of `--repeat` runs (the machine's other load only ever adds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from correlator.clock import Clock
from correlator.incidents.model import Incident
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.sqlite import SqliteRecordStore

T0 = 1_800_000_000.0


def _thread_cpu(db: Any) -> float:
    """CPU seconds of an aiosqlite connection's thread so far."""
    return time.clock_gettime(time.pthread_getcpuclockid(db._thread.ident))


async def run(args: argparse.Namespace) -> tuple[int, float, float]:
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(T0)
        records = SqliteRecordStore(Path(tmp) / "records.db")
        await records.open()
        settings = ProblemSettings(recurrence_count=3, recurrence_window=30 * 86400.0)
        problems = ProblemService(records, settings, clock)
        await problems.open()
        incidents = []
        for n in range(args.incidents):
            host = f"sw{n % args.signatures}"
            incidents.append(
                Incident(
                    f"link down on {host}",
                    T0 + n / 100,
                    id=n + 1,
                    host=host,
                    key=f"{host}/linkDown",
                    rule="r",
                )
            )
        loop = 0.0
        rec0 = _thread_cpu(records.db)
        for start in range(0, len(incidents), args.batch):
            batch = incidents[start : start + args.batch]
            clock.advance_to(batch[-1].opened_at)
            t0 = time.thread_time()
            await problems.on_opened([(inc, None) for inc in batch])
            loop += time.thread_time() - t0
        rec = _thread_cpu(records.db) - rec0
        linked = sum(len(p.incidents) for p in problems._problems.values())
        await records.close()
    return linked, loop, rec


async def main(args: argparse.Namespace) -> None:
    runs = [await run(args) for _ in range(args.repeat)]
    loop, rec = min(r[1] for r in runs), min(r[2] for r in runs)
    us = 1e6 / args.incidents
    print(
        f"incidents={args.incidents} signatures={args.signatures} linked={runs[0][0]} batch={args.batch}"
        f" runs={args.repeat} (SQLite, CPU time, least)"
    )
    print(f"problems: loop {loop * us:.2f} µs, record store thread {rec * us:.2f} µs per incident")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--incidents", type=int, default=20_000)
    p.add_argument("--signatures", type=int, default=200)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(p.parse_args()))
