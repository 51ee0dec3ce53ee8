"""Availability, capacity and noisiest-CI stages: events/s through them, and the cost of one scrape.

Runs the stages in-process on a virtual clock (the availability database on a temp dir, as live),
with a mix of 2% capacity readings, 1% down/up signals and the rest ordinary events, then times the
exporters' collect() with the series counts reached.

    .venv/bin/python bench/availability_capacity.py [--events 200000] [--services 500] [--series 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path

from correlator.availability import AvailabilityStage, parse_services, parse_settings
from correlator.availability.stage import EXPORTER as AVAILABILITY
from correlator.capacity import CapacitySettings, CapacityStage, CapacityTracker
from correlator.capacity.tracker import CapacityExporter
from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.noisiest import EXPORTER as NOISIEST
from correlator.noisiest import NoisiestStage
from correlator.pipeline import Stage, StageContext
from correlator.yamlfile import loads

BATCH = 1000


def services_yaml(n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [
            f"  svc{i}:",
            "    all_of:",
            f"      - fw{i}",
            "      - any_of:",
            f"          - {{ci: r{i}a, resource: uplink}}",
            f"          - {{ci: r{i}b, resource: uplink}}",
        ]
    return "\n".join(lines) + "\n"


def make_events(n: int, services: int, series: int, t0: float) -> list[Event]:
    rnd = random.Random(1)
    out = []
    for i in range(n):
        t = t0 + i * 0.01
        r = rnd.random()
        if r < 0.02:
            k = rnd.randrange(series)
            out.append(
                Event(
                    str(i),
                    t,
                    t,
                    "bench",
                    f"h{k % 2000}",
                    "capacity.disk",
                    resource=f"d{k // 2000}",
                    attributes={"utilization_ratio": rnd.random()},
                )
            )
        elif r < 0.03:
            s = rnd.randrange(services)
            host, res = rnd.choice([(f"fw{s}", ""), (f"r{s}a", "uplink"), (f"r{s}b", "uplink")])
            typ = "IF-MIB::linkDown" if res else "host.down"
            sev = Severity.MAJOR if rnd.random() < 0.5 else Severity.CLEAR
            out.append(Event(str(i), t, t, "bench", host, typ, sev, res))
        else:
            out.append(Event(str(i), t, t, "bench", f"h{rnd.randrange(5000)}", "syslog.line", Severity.INFO))
    return out


async def main(args: argparse.Namespace) -> None:
    t0 = 1_790_000_000.0
    events = make_events(args.events, args.services, args.series, t0)
    tracker = CapacityTracker(CapacitySettings(trend_window=86400.0, max_series=args.series))
    with tempfile.TemporaryDirectory() as tmp:
        avail = AvailabilityStage(
            parse_settings({}), parse_services(loads(services_yaml(args.services))), Path(tmp)
        )
        clock = Clock(t0)
        await avail.open(clock)
        stages: list[tuple[str, Stage]] = [
            ("noisiest", NoisiestStage()),
            ("capacity", CapacityStage(tracker)),
            ("availability", avail),
        ]
        for name, stage in stages:
            start = time.perf_counter()
            for i in range(0, len(events), BATCH):
                batch = events[i : i + BATCH]
                clock.advance_to(batch[-1].time)
                await stage(batch, StageContext(clock, live=True))
            dt = time.perf_counter() - start
            print(f"{name:>13}: {len(events) / dt:>10,.0f} events/s")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak resident memory of the process: {peak:.0f} MB")
        for name, exporter in (
            ("capacity", CapacityExporter(tracker)),
            ("availability", AVAILABILITY),
            ("noisiest", NOISIEST),
        ):
            start = time.perf_counter()
            samples = sum(len(f.samples) for f in exporter.collect())
            print(f"scrape {name:>12}: {(time.perf_counter() - start) * 1000:7.1f} ms for {samples} samples")
        print(
            f"capacity series: {len(tracker.series)}; outages opened: "
            f"{sum(len(h.recent) for h in avail.state.history.values())}"
        )
        await avail.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--series", type=int, default=10_000)
    asyncio.run(main(p.parse_args()))
