"""Level-2 correlation throughput and state memory: 100 and 1,000 mixed rules at 10,000 and 1,000,000 keys.

Run: .venv/bin/python bench/correlate.py [--rules 100,1000] [--keys 10000,1000000] [--events 200000]
Each configuration runs in a fresh process on one core. The rules are compiled from YAML like real
ones: a quarter each of threshold, pair, absence and group, each pinned to its own event types and
keyed by host. First every key gets state (the warm-up, one event per key); the memory it keeps
divided by the keys is the state per active key (traced by tracemalloc up to 100,000 keys, resident
memory growth above). The time to serialise a snapshot of that state is printed too. Then `--events` events over those keys go
through the correlate stage in event-time order (timers firing as they fall due) and are timed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

from correlator.clock import Clock
from correlator.correlation import snapshot
from correlator.correlation.core import Engine
from correlator.correlation.stage import Correlate
from correlator.event import Event, Severity
from correlator.inventory import Inventory
from correlator.pipeline import StageContext
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext

KINDS = ("threshold", "pair", "absence", "group")
CHUNK = 10_000


def make_rules(n: int) -> str:
    out = ["rules:"]
    for i in range(n):
        kind = KINDS[i % 4]
        if kind == "threshold":
            body = f"match: {{type: t{i}}}\ncount: 5\nwithin: 1m\non_fire: [{{emit: {{type: t{i}.storm}}}}]"
        elif kind == "pair":
            body = (
                f"match: {{type: p{i}.down}}\nclose: {{type: p{i}.up}}\nwithin: 30s\n"
                "on_timeout: [{incident: {action: open, title: '{host} down'}}]"
            )
        elif kind == "absence":
            body = f"match: {{type: a{i}}}\nevery: 10m"
        else:
            body = f"match: {{type: g{i}}}\ngroup_wait: 30s"
        out.append(f"  - name: r{i}\n    kind: {kind}\n" + textwrap.indent(body, "    "))
    return "\n".join(out) + "\n"


def event_type(rule: int, n: int) -> str:
    kind = KINDS[rule % 4]
    if kind == "threshold":
        return f"t{rule}"
    if kind == "pair":
        return f"p{rule}.down" if n % 2 == 0 else f"p{rule}.up"
    if kind == "absence":
        return f"a{rule}"
    return f"g{rule}"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def feed(stage: Correlate, clock: Clock, events: list[Event]) -> None:
    await stage(events, StageContext(clock, live=False))


def events_for(
    start: int, count: int, rules: int, hosts: int, t0: float, step: float, seq: int
) -> list[Event]:
    """Fresh strings per event, as from orjson: state must pay for its own copies."""
    out = []
    for j in range(start, start + count):
        rule = j % rules
        host = f"host-{(j // rules) % hosts:07d}"
        t = t0 + j * step
        out.append(Event(f"{seq}-{j:012d}", t, t, "bench", host, event_type(rule, seq), Severity.MAJOR))
    return out


async def one(rules: int, keys: int, events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = BuildContext(Path(tmp), Inventory())
        engines: list[Engine] = [r.compiled for r in compile_texts({"bench.yaml": make_rules(rules)}, ctx)]
    for e in engines:
        e.hooks = {h: a for h, a in e.hooks.items() if h != "timeout"}  # responses are not the subject here
    stage = Correlate(engines, lateness=5.0)
    hosts = max(keys // rules, 1)
    t0 = 1_800_000_000.0
    clock = Clock(t0)
    gc.collect()
    before = rss_bytes()
    traced = keys <= 100_000  # exact but slow: Python-level bytes kept by the state
    if traced:
        tracemalloc.start()
    # warm-up: one event per key, all within a few seconds so no window closes before measuring
    step = 5.0 / keys
    for start in range(0, keys, CHUNK):
        await feed(stage, clock, events_for(start, min(CHUNK, keys - start), rules, hosts, t0, step, 0))
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] if traced else 0
    tracemalloc.stop()
    active = sum(e.keys() for e in engines)
    grown = rss_bytes() - before
    t_snap = time.perf_counter()
    rows = snapshot.encode(stage)
    snap_seconds = time.perf_counter() - t_snap
    snap_bytes = sum(len(r[2]) for r in rows)
    del rows
    # measured run: the same keys again, spread over 20 s of event time (pairs close, thresholds count)
    batches = [
        events_for(start, min(CHUNK, events - start), rules, hosts, t0 + 5.0, 20.0 / events, 1)
        for start in range(0, events, CHUNK)
    ]
    began = time.perf_counter()
    for batch in batches:
        await feed(stage, clock, batch)
    elapsed = time.perf_counter() - began
    per_key = (kept if traced else grown) / max(active, 1)
    how = "traced" if traced else "RSS"
    print(
        f"{rules:>6} rules {keys:>9,} keys  {events / elapsed:>10,.0f} events/s  "
        f"state {per_key:>5.0f} B/key ({how}; {active:,} active keys, RSS +{grown / 2**20:,.0f} MiB)  "
        f"snapshot {snap_bytes / 2**20:,.1f} MiB serialised in {snap_seconds:.2f}s",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rules", default="100,1000")
    p.add_argument("--keys", default="10000,1000000")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--one", nargs=2, type=int, metavar=("RULES", "KEYS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        asyncio.run(one(args.one[0], args.one[1], args.events))
        return
    for r in (int(x) for x in args.rules.split(",")):
        for k in (int(x) for x in args.keys.split(",")):
            cmd = [sys.executable, __file__, "--one", str(r), str(k), "--events", str(args.events)]
            subprocess.run(["taskset", "-c", "0", *cmd], check=True)


if __name__ == "__main__":
    main()
