"""Syslog benchmark: UDP messages/s into the real daemon (durably accepted), and parse cost per message.

    .venv/bin/python bench/syslog.py [--rates 10000,20000,30000] [--seconds 3]

Messages come from a separate sender process (a mix of Cisco IOS, Juniper, Linux and RFC 5424
lines, paced per half millisecond) to the daemon's UDP listener (uvloop, journal fsync on, no rules).
"accepted" is correlator_events_received_total{source="syslog"}, i.e. durable in the journal;
"daemon CPU" is the daemon's user+system time per accepted message (one core's worth).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import cpu_seconds

from collectors.syslog.mapping import Mapper
from collectors.syslog.parse import parse
from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.udp_offer import offer

SAMPLES = [
    b"<187>%d: core-sw%d: Dec  6 20:00:00.123: %%LINK-3-UPDOWN: Interface GigabitEthernet0/%d, changed state to down",
    b"<189>%d: *Mar  1 00:06:50.019: %%SYS-5-CONFIG_I: Configured from console by vty%d (10.0.0.%d)",
    b"<28>Dec  6 20:00:00 mx%d mib2d[1415]: SNMP_TRAP_LINK_DOWN: ifIndex %d, ifOperStatus down(2), ifName ge-0/0/%d",
    b"<38>Dec  6 20:00:00 web%d sshd[%d]: Failed password for root from 10.9.9.%d port 22 ssh2",
    b"<28>1 2026-12-06T20:00:00.123Z mx%d mib2d %d SNMP_TRAP_LINK_DOWN [junos@2636.1.1.1.2.18 "
    b'snmp-interface-index="%d" interface-name="ge-0/0/1"] ifIndex 545, ifOperStatus down(2)',
]


def messages(n: int) -> list[bytes]:
    return [SAMPLES[i % len(SAMPLES)] % (i, i % 50, i % 48) for i in range(n)]


def bench_parse(n: int = 100_000) -> None:
    frames = messages(5000)
    mapper = Mapper({}, 3600.0)
    now = time.time()
    t0 = time.process_time()  # CPU time: the figure for one core, whatever else the machine runs
    for i in range(n):
        mapper.to_event(parse(frames[i % 5000], now), "10.0.0.1", now)
    dt = time.process_time() - t0
    print(f"parse + map, in process: {dt / n * 1e6:.1f} µs CPU per message ({n / dt:,.0f}/s on one core)")


def bench_udp(rates: list[int], seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-syslog-"))
    http, udp = free_port(), free_port(socket.SOCK_DGRAM)
    cfg = base_config(work, http, collectors={"syslog": {"udp": f"127.0.0.1:{udp}", "tcp": None}})
    cfg["logging"] = {"level": "warning"}
    d = DaemonProcess(work, cfg, http)
    d.start()
    assert d.proc is not None
    packets = messages(5000)
    try:
        print(
            f"{'offered/s':>10} {'sent':>8} {'accepted':>9} {'lost':>6} {'accepted/s':>11} {'daemon CPU':>11}"
        )
        for rate in rates:
            cpu0 = cpu_seconds(d.proc.pid)
            count = int(rate * seconds)
            got, elapsed = offer(d, udp, packets, rate, count, "syslog")
            cpu = (cpu_seconds(d.proc.pid) - cpu0) / max(got, 1) * 1e6
            print(f"{rate:>10} {count:>8} {got:>9} {count - got:>6} {got / elapsed:>11.0f} {cpu:>8.1f} µs")
        time.sleep(6)  # the kernel drop counter is read every 5 s
        for reason in ("receive_buffer", "queue_full", "too_large", "internal_error"):
            n = d.metric("correlator_syslog_dropped_total", {"transport": "udp", "reason": reason})
            print(f"correlator_syslog_dropped_total{{transport='udp', reason={reason!r}}}: {n:.0f}")
    finally:
        d.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="10000,20000,30000")
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    bench_parse()
    bench_udp([int(r) for r in a.rates.split(",")], a.seconds)


if __name__ == "__main__":
    main()
