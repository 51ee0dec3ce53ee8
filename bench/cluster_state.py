"""A worker's level-2 snapshot round (cluster/handover.py `StateKeeper.save`): CPU spent holding the
pipeline lock, which every batch and timer flush of the worker waits for meanwhile.

Run: .venv/bin/python bench/cluster_state.py [--keys 200000] [--partitions 16] [--runs 5]
One threshold and one pair rule keyed by host, `--keys` hosts with state in each, spread over
`--partitions` partitions, all owned by this worker. Nothing is written to NATS: the figure is the
lock's hold time (process CPU, time.process_time), the median and minimum over `--runs` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any

from correlator import gctune
from correlator.clock import Clock
from correlator.cluster.handover import StateKeeper
from correlator.cluster.state import Partitioner
from correlator.correlation.pair import Pair
from correlator.correlation.stage import Correlate
from correlator.correlation.threshold import Threshold
from correlator.event import Event, Severity
from correlator.pipeline import Pipeline, StageContext
from correlator.rules.fields import compile_field
from correlator.rules.matchers import compile_matcher


class _TimedLock:
    """The runner's lock, recording the process CPU spent inside it."""

    def __init__(self) -> None:
        self.held: list[float] = []
        self._t0 = 0.0

    async def __aenter__(self) -> None:
        self._t0 = time.process_time()

    async def __aexit__(self, *exc: Any) -> None:
        self.held.append(time.process_time() - self._t0)


class _Queue:
    def __init__(self, partitions: int) -> None:
        self.partitions = list(range(partitions))

    def covered(self, p: int) -> int:
        return 1


class _Store:
    async def position(self) -> int:
        return 1


def engines() -> list[Any]:
    host = compile_field("host")

    def key(ev: Event) -> tuple[Any, ...]:
        return (host(ev),)

    th = Threshold("th", compile_matcher({"type": "auth"}), key, count=1_000_000, within=3600,
                   max_keys=10_000_000)  # fmt: skip
    pair = Pair("pair", compile_matcher({"type": "down"}), compile_matcher({"type": "up"}), key,
                within=3600, max_keys=10_000_000)  # fmt: skip
    th.group_by = pair.group_by = ("host",)
    return [th, pair]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    gctune.tune()  # as the daemon does at start
    stage = Correlate(engines())
    pipeline = Pipeline([stage])
    clock = Clock(1_000.0)
    stage.bind(clock)
    for i in range(0, args.keys, 10_000):
        batch = [
            Event(f"{t}{n}", 1_000.0, 1_000.0, "bench", f"h{n}", t, Severity.MAJOR)
            for n in range(i, min(i + 10_000, args.keys))
            for t in ("auth", "down")
        ]
        await pipeline.run(batch, StageContext(clock, live=False))
    lock = _TimedLock()
    runner = SimpleNamespace(pipeline=pipeline, lock=lock)
    bus = SimpleNamespace(state=None, settings=SimpleNamespace(stream="bench"))  # no key held: no write
    keeper = StateKeeper(
        bus, _Queue(args.partitions), runner, _Store(), clock,  # type: ignore[arg-type]
        Partitioner(None, "host", args.partitions),
    )  # fmt: skip
    for _ in range(args.runs):
        await keeper.save()
    held = lock.held
    print(
        f"save, {args.keys} keys x 2 rules, {args.partitions} partitions: lock held"
        f" median {statistics.median(held):.3f} s CPU, min {min(held):.3f} s ({args.runs} runs)"
    )


if __name__ == "__main__":
    asyncio.run(main())
