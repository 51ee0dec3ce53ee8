"""SNMP benchmark: v2c traps/s into the real daemon (durably accepted), and poll cycle time.

    .venv/bin/python bench/snmp.py [--rates 2000,4000,6000] [--seconds 5] [--targets 500]

Traps come from a separate sender process (pre-encoded v2c linkDown traps, paced per millisecond);
"accepted" is the daemon's correlator_events_received_total{source="snmp"}, i.e. durable in the journal.
Polling runs the collector's Poller in this process against one local snmpd, all targets at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.snmp import ber
from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.snmp import free_udp_port, snmpd
from tests.support.udp_offer import offer


def trap(i: int) -> bytes:
    return ber.encode_notification(
        1,
        b"public",
        ber.TRAP_V2,
        i & 0x7FFFFFFF,
        [
            ("1.3.6.1.2.1.1.3.0", ("ticks", 100 + i)),
            ("1.3.6.1.6.3.1.1.4.1.0", ("oid", "1.3.6.1.6.3.1.1.5.3")),
            (f"1.3.6.1.2.1.2.2.1.1.{i % 48}", i % 48),
            (f"1.3.6.1.2.1.2.2.1.2.{i % 48}", f"GigabitEthernet0/{i % 48}"),
            (f"1.3.6.1.2.1.2.2.1.7.{i % 48}", 1),
            (f"1.3.6.1.2.1.2.2.1.8.{i % 48}", 2),
        ],
    )


def bench_traps(rates: list[int], seconds: float, poll_port: int | None = None, targets: int = 0) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-snmp-"))
    http, udp = free_port(), free_udp_port()
    snmp: dict[str, Any] = {"listen": f"127.0.0.1:{udp}"}
    if poll_port:
        # The daemon polls `targets` targets every 5 s while the traps arrive: does polling slow ingest?
        snmp["targets"] = [
            {"name": f"t{i}", "address": f"127.0.0.1:{poll_port}", "interval": "5s"} for i in range(targets)
        ]
        print(f"while polling {targets} targets every 5 s (full poll):")
    cfg = base_config(work, http, collectors={"snmp": snmp})
    cfg["logging"] = {"level": "warning"}
    d = DaemonProcess(work, cfg, http)
    d.start()
    try:
        packets = [trap(i) for i in range(5000)]
        head = f"{'offered/s':>10} {'sent':>8} {'accepted':>9} {'lost':>6} {'accepted/s':>11}"
        print(head + "  (accepted = durable in the journal)")
        for rate in rates:
            count = int(rate * seconds)
            got, elapsed = offer(d, udp, packets, rate, count, "snmp")
            print(f"{rate:>10} {count:>8} {got:>9} {count - got:>6} {got / elapsed:>11.0f}")
        time.sleep(6)  # the kernel drop counter is read every 5 s
        for reason in ("receive_buffer", "overload", "queue_full", "malformed"):
            n = d.metric("correlator_snmp_dropped_total", {"reason": reason})
            print(f"correlator_snmp_dropped_total{{reason={reason!r}}}: {n:.0f}")
        if poll_port:
            polls = d.metric("correlator_snmp_polls_total", {"result": "ok"})
            print(f"polls completed meanwhile: {polls:.0f}")
    finally:
        d.stop()


async def bench_poll(n_targets: int) -> None:
    from collectors.snmp.poller import Poller
    from collectors.snmp.settings import parse

    events = 0

    async def emit(evs: list[Any], _source: str) -> None:
        nonlocal events
        events += len(evs)

    with tempfile.TemporaryDirectory() as tmp, snmpd(Path(tmp)) as (port, _):
        for kinds in (["reachability"], ["reachability", "interfaces", "host_resources"]):
            targets = [
                {"name": f"t{i}", "address": f"127.0.0.1:{port}", "poll": kinds} for i in range(n_targets)
            ]
            poller = Poller(parse({"targets": targets, "poll_concurrency": 64}), emit, {})
            await poller.poll_all()  # warm-up: engine, transports, first counter baseline
            t0 = time.perf_counter()
            await poller.poll_all()
            dt = time.perf_counter() - t0
            print(
                f"poll cycle, {n_targets} targets, {'+'.join(kinds)}: "
                f"{dt:.2f}s ({n_targets / dt:.0f} targets/s)"
            )
            await poller.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="2000,4000,6000,8000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--targets", type=int, default=500)
    ap.add_argument("--skip-traps", action="store_true")
    ap.add_argument("--skip-poll", action="store_true")
    ap.add_argument("--poll-while-trapping", action="store_true", help="also run the trap test while polling")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    if not a.skip_traps:
        bench_traps(rates, a.seconds)
    if a.poll_while_trapping:
        with tempfile.TemporaryDirectory() as tmp, snmpd(Path(tmp)) as (port, _):
            bench_traps(rates, a.seconds, port, a.targets)
    if not a.skip_poll:
        asyncio.run(bench_poll(a.targets))


if __name__ == "__main__":
    main()
