"""Levels 1 and 2 per Alertmanager alert with a rule set (the shipped rules by default), in process.

Run: .venv/bin/python bench/alert_rules.py [--events 100000] [--alerts 100000] [--batch 2000]
     [--rules rules] [--stages both] [--mixed] [--warm 2000]

Alertmanager webhook payloads (version 4) are made from bench/alertmanager.py's `label_sets`, with
fixed times (one startsAt per request of 100 alerts, 0.1 s apart), and converted to events by the
webhook collector's own code (collectors/webhook/alertmanager.py). `--warm` events go through the
stages first (the indexes and caches fill), then `--events` more in batches of `--batch` through
the filter stage (level 1) and the correlate stage (level 2) built from `--rules`, as the daemon
builds them; it prints µs per alert of each. The alerts cycle through `--alerts` label sets: with
more label sets than events each alert is new (an incident each), as in bench/alertmanager.py's first
pass; fewer make repeats that level 1 folds. `--mixed` also resolves alerts, sends Watchdog and
alerts of unknown or missing severity now and then.

Instruction counts, the figure to trust on a shared machine: the same command under
`valgrind --tool=cachegrind --cache-sim=no` with `--stages none` (conversion only), `filter` and
`both`, each at two `--events` values; per alert, level 1 is (filter - none) and level 2 (both -
filter) of the difference between the two values, divided by the difference of events:

    for s in none filter both; do for n in 2000 6000; do
      valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/alert_rules.py --stages $s --events $n 2>&1 | grep 'I *refs'
    done; done

`--tool=callgrind` and `callgrind_annotate` attribute them to functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alertmanager import label_sets, webhook_document  # bench/alertmanager.py: what it posts

from collectors.webhook.alertmanager import AlertOptions, convert
from correlator import gctune
from correlator.clock import Clock
from correlator.correlation.stage import Correlate
from correlator.event import Event
from correlator.pipeline import StageContext
from correlator.rules.reload import RulesHolder
from correlator.rules.stage import FilterStage

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SOURCE = "webhook:prometheus"
PER_REQUEST = 100


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{round(t % 1 * 1000):03d}Z"


def payloads(n: int, distinct: int, mixed: bool = False) -> Iterator[tuple[float, bytes]]:
    """(time, body) of webhook requests of PER_REQUEST alerts, n alerts in all, cycling through
    `distinct` label sets. `mixed`: every 7th alert resolves the one 50 before it, every 500th is
    Watchdog, every 97th has a severity no rule names and every 89th none."""
    sets = label_sets(distinct)
    for first in range(0, n, PER_REQUEST):
        t = START + first / PER_REQUEST * 0.1
        stamp = _iso(t)
        alerts: list[dict[str, Any]] = []
        for i in range(first, min(n, first + PER_REQUEST)):
            k = i % distinct
            labels = dict(sets[k])
            status = "firing"
            if mixed:
                if i % 7 == 6 and i >= 50:
                    k = (i - 50) % distinct
                    labels = dict(sets[k])
                    status = "resolved"
                if i % 500 == 499:
                    labels = {"alertname": "Watchdog", "severity": "none"}
                    k = -1
                elif i % 97 == 96:
                    labels["severity"] = "debugging"
                elif i % 89 == 88:
                    del labels["severity"]
            alerts.append(
                {
                    "status": status,
                    "labels": labels,
                    "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance', '')}"},
                    "startsAt": stamp,
                    "endsAt": stamp if status == "resolved" else "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
                    "fingerprint": f"{k & 0xFFFFFFFFFFFF:016x}",
                }
            )
        yield t, orjson.dumps(webhook_document(alerts))


def alert_events(n: int, distinct: int, mixed: bool = False) -> list[Event]:
    """The events the webhook collector makes of those payloads."""
    opts = AlertOptions()
    out: list[Event] = []
    for t, body in payloads(n, distinct, mixed):
        for _, ev in convert(orjson.loads(body), SOURCE, t, opts, body=body):
            if not isinstance(ev, Event):
                raise SystemExit(f"conversion failed: {ev}")
            out.append(ev)
    return out


class Stages:
    """Levels 1 and 2 of one rule set, as the pipeline chains them, with the time each took."""

    def __init__(self, rules_dir: Path) -> None:
        self.holder = RulesHolder(rules_dir)
        self.holder.load_initial()
        self.filter = FilterStage(self.holder)
        self.correlate = Correlate([], rules=self.holder)
        self.clock = Clock(START)  # at the first alert: from 0, the sweep timer would tick all the way
        self.level1 = 0.0
        self.level2 = 0.0

    def run(self, batch: list[Event], stages: str) -> tuple[list[Event], StageContext]:
        ctx = StageContext(self.clock, live=False)
        if stages == "none":
            return batch, ctx
        t0 = time.perf_counter()
        kept = _drive(self.filter(batch, ctx))
        t1 = time.perf_counter()
        self.level1 += t1 - t0
        if stages == "filter":
            return kept, ctx
        out = _drive(self.correlate(kept, ctx))
        self.level2 += time.perf_counter() - t1
        return out, ctx


def _drive(coro: Any) -> list[Event]:
    """Run a stage's coroutine that never awaits anything pending (both stages here): no event loop,
    whose own per-batch work would blur the figures."""
    try:
        coro.send(None)
    except StopIteration as done:
        return list(done.value)
    coro.close()
    raise RuntimeError("the stage waited for something")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000, help="alerts measured, after --warm")
    p.add_argument("--alerts", type=int, default=100_000, help="distinct label sets")
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--warm", type=int, default=2000, help="alerts run first, not measured")
    p.add_argument("--rules", type=Path, default=Path(__file__).resolve().parents[1] / "rules")
    p.add_argument("--stages", choices=("none", "filter", "both"), default="both")
    p.add_argument("--mixed", action="store_true", help="resolved, Watchdog and odd severities too")
    a = p.parse_args()
    events = alert_events(a.warm + a.events, a.alerts, a.mixed)
    stages = Stages(a.rules)
    gctune.tune()  # as the daemon does once started: what exists now is never scanned again
    warm, measured = events[: a.warm], events[a.warm :]
    for i in range(0, len(warm), a.batch):
        stages.run(warm[i : i + a.batch], a.stages)
    stages.level1 = stages.level2 = 0.0
    out = responses = 0
    for i in range(0, len(measured), a.batch):
        kept, ctx = stages.run(measured[i : i + a.batch], a.stages)
        out += len(kept)
        responses += len(ctx.responses)
    gctune.finished()
    n = max(len(measured), 1)
    print(
        f"{len(measured)} alerts ({a.alerts} label sets{', mixed' if a.mixed else ''}), "
        f"stages {a.stages}: level 1 {stages.level1 / n * 1e6:.2f} µs/alert, "
        f"level 2 {stages.level2 / n * 1e6:.2f} µs/alert; {out} events out, {responses} responses"
    )


if __name__ == "__main__":
    main()
