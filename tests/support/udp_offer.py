"""Offer a paced UDP load to the real daemon from a separate process; shared by the SNMP and syslog
benchmarks (bench/). "Accepted" is what the daemon counted as durable in `correlator_events_received_total`."""

from __future__ import annotations

import multiprocessing
import socket
import time

from tests.support.daemon import DaemonProcess


def sender(port: int, packets: list[bytes], rate: int, count: int, start_at: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    sent = 0
    while sent < count:
        due = min(count, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            s.sendto(packets[sent % len(packets)], ("127.0.0.1", port))
            sent += 1
        time.sleep(0.0005)


def offer(
    d: DaemonProcess, port: int, packets: list[bytes], rate: int, count: int, source: str
) -> tuple[int, float]:
    """Send `count` datagrams at `rate`/s; returns (accepted, seconds from first send to last accepted)."""
    labels = {"source": source}
    before = d.metric("correlator_events_received_total", labels)
    start_at = time.time() + 0.3
    p = multiprocessing.Process(target=sender, args=(port, packets, rate, count, start_at))
    p.start()
    t0 = time.time()
    last, last_change = before, time.time()
    while True:
        n = d.metric("correlator_events_received_total", labels)
        if n != last:
            last, last_change = n, time.time()
        if n - before >= count or (not p.is_alive() and time.time() - last_change > 1.0):
            break
        time.sleep(0.05)
    p.join()
    return int(last - before), max(last_change - max(t0, start_at), 1e-9)
