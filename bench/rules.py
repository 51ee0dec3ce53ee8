"""Level-1 rule throughput: events/s through the filter stage at 10, 100, 1,000 and 10,000 rules.

Run: .venv/bin/python bench/rules.py [--events 100000] [--counts 10,100,1000,10000]
One core, one process. The rule set mixes what real sets hold: a few global rules every event meets
(inventory enrichment, noise drops on host patterns) and many rules pinned to an event type or host,
with regex, glob, numeric and in-list conditions, set/classify/rename actions. Events draw their type
from the types the rules name (plus 20% types no rule names), so the index has real work to do.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path

from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.pipeline import StageContext
from correlator.rules.reload import RulesHolder
from correlator.rules.stage import FilterStage

GLOBAL_RULES = """
  - name: g-drop-lab
    match: {host: {regex: '^(lab|test)-'}}
    drop: true
  - name: g-drop-debug
    match: {attributes.level: {in: [debug, trace]}}
    drop: true
  - name: g-inventory
    inventory: true
  - name: g-crit-sites
    match: {attributes.addr: {cidr: 10.99.0.0/16}}
    classify: {category: core}
"""


def make_rules(n: int) -> str:
    out = ["rules:", GLOBAL_RULES.rstrip("\n")]
    pinned = max(n - 4, 1)
    types = max(pinned // 2, 1)
    for i in range(pinned):
        t = f"vendor.event{i % types}"
        kind = i % 4
        if kind == 0:
            out.append(
                f"  - name: r{i}\n    match: {{type: {t}, host: {{regex: '^core-'}}}}\n"
                f"    classify: {{severity: major, category: network}}"
            )
        elif kind == 1:
            out.append(
                f"  - name: r{i}\n    match: {{type: {t}, attributes.value: {{gt: 80}}}}\n"
                f"    set: {{message: '{{host}} value {{attributes.value}}'}}"
            )
        elif kind == 2:
            out.append(
                f"  - name: r{i}\n    match: {{type: {t}, resource: {{glob: 'Gi*'}}}}\n"
                f"    set: {{attributes.tag: 'r{i}-{{resource}}'}}"
            )
        else:
            out.append(
                f"  - name: r{i}\n    match: {{host: edge-{i}, severity: {{ge: minor}}}}\n"
                f"    rename: '{{type}}.edge'"
            )
    return "\n".join(out) + "\n"


def make_events(n: int, rule_count: int, seed: int) -> list[Event]:
    rnd = random.Random(seed)
    types = max((max(rule_count - 4, 1)) // 2, 1)
    hosts = [f"core-sw{i}" for i in range(50)] + [f"edge-{i}" for i in range(50)] + ["lab-1"]
    out = []
    for i in range(n):
        t = f"vendor.event{rnd.randrange(types)}" if rnd.random() < 0.8 else f"other.{rnd.randrange(100)}"
        out.append(
            Event(
                f"e{i}",
                1000.0 + i * 0.001,
                1000.0,
                "snmp",
                rnd.choice(hosts),
                t,
                rnd.choice((Severity.MAJOR, Severity.INFO, Severity.WARNING)),
                rnd.choice(("Gi0/1", "Te1/1", "")),
                "",
                {"value": rnd.randrange(100), "addr": f"10.{rnd.choice((1, 99))}.0.{rnd.randrange(255)}"},
            )
        )
    return out


async def measure(rule_count: int, n_events: int, batch: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "bench.yaml").write_text(make_rules(rule_count))
        holder = RulesHolder(Path(d))
        t0 = time.perf_counter()
        holder.load_initial()
        compile_s = time.perf_counter() - t0
    stage = FilterStage(holder)
    clock = Clock(0.0)
    events = make_events(n_events, rule_count, seed=rule_count)
    await stage(
        make_events(2000, rule_count, seed=1), StageContext(clock, live=False)
    )  # warm the index cache
    kept = 0
    t0 = time.perf_counter()
    for i in range(0, n_events, batch):
        kept += len(await stage(events[i : i + batch], StageContext(clock, live=False)))
    elapsed = time.perf_counter() - t0
    return n_events / elapsed, compile_s, kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--counts", default="10,100,1000,10000")
    args = p.parse_args()
    print(f"{'rules':>7} {'events/s':>10} {'vs 10':>6} {'compile s':>10} {'kept':>7}")
    base = None
    for count in (int(c) for c in args.counts.split(",")):
        rate, compile_s, kept = asyncio.run(measure(count, args.events, args.batch))
        base = base or rate
        print(f"{count:>7} {rate:>10,.0f} {rate / base:>6.2f} {compile_s:>10.2f} {kept:>7}")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
