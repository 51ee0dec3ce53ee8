"""End-to-end MQTT ingest: `mosquitto_pub -l` (a separate process) -> Mosquitto -> daemon -> event store.

Starts a Mosquitto and the real daemon on free 127.0.0.1 ports, publishes N JSON events per QoS
level and prints messages/s from the first publish until the store holds them all, plus the
publisher's own rate and the daemon's peak RSS. Usage: .venv/bin/python bench/mqtt.py [-n 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.mosquitto import Mosquitto


def run(qos: int, n: int, workdir: Path) -> None:
    broker = Mosquitto.create(workdir / "broker")
    broker.start()
    port = free_port()
    cfg = base_config(
        workdir,
        port,
        collectors={
            "mqtt": {
                "brokers": [{"name": "bench", "port": broker.port, "client_id": f"bench-{qos}"}],
                "subscriptions": [
                    {
                        "name": "ev",
                        "topic": "bench/{site}/{host}/events",
                        "qos": qos,
                        "defaults": {"type": "x"},
                    }
                ],
            }
        },
        logging={"level": "warning"},
    )
    d = DaemonProcess(workdir, cfg, port)
    d.start()
    try:
        d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "bench"}) == 1, what="connected")
        lines = b"".join(
            orjson.dumps({"severity": "minor", "message": f"event {i}", "attributes": {"seq": i}}) + b"\n"
            for i in range(n)
        )
        cpu0 = _cpu_seconds(d)
        t0 = time.perf_counter()
        topic = "bench/s1/h1/events"
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-t", topic, "-q", str(qos), "-l", "-M", "1000"],
            input=lines,
            check=True,
        )
        t_pub = time.perf_counter() - t0
        stored = 0.0
        last_change, last = time.perf_counter(), -1.0
        while stored < n:
            stored = d.metric("correlator_events_stored_total")
            now = time.perf_counter()
            if stored != last:
                last_change, last = now, stored
            elif now - last_change > 10:
                break  # nothing moved for 10 s: report what arrived (QoS 0 may lose)
            time.sleep(0.1)
        t_all = (last_change if stored < n else time.perf_counter()) - t0
        cpu_us = (_cpu_seconds(d) - cpu0) / max(stored, 1) * 1e6
        rss = _rss_mb(d)
        print(
            f"QoS {qos}: {int(stored)}/{n} stored in {t_all:.2f}s = {stored / t_all:,.0f} msg/s end to end; "
            f"daemon CPU {cpu_us:.0f} us/msg (~{1e6 / cpu_us:,.0f} msg/s per free core); "
            f"publisher alone {n / t_pub:,.0f} msg/s; daemon peak RSS {rss:.0f} MB",
            flush=True,
        )
    finally:
        d.stop()
        broker.stop()


def _cpu_seconds(d: DaemonProcess) -> float:
    """User + system CPU of the daemon (all its threads), from /proc."""
    assert d.proc is not None
    fields = Path(f"/proc/{d.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(d: DaemonProcess) -> float:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", "--messages", type=int, default=100_000)
    p.add_argument("--qos", type=int, choices=(0, 1), action="append")
    args = p.parse_args()
    for qos in args.qos or [0, 1]:
        with tempfile.TemporaryDirectory(prefix=f"bench-mqtt-q{qos}-") as tmp:
            run(qos, args.messages, Path(tmp))


if __name__ == "__main__":
    main()
