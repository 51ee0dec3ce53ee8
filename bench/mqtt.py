"""End-to-end MQTT ingest: a publisher process -> Mosquitto -> the real daemon -> the event store.

Starts a Mosquitto and the daemon (uvloop, journal fsync on) on free 127.0.0.1 ports and times N
JSON events from the first publish until the store holds them all, in three modes:
  qos0-live     `mosquitto_pub -l` (C) publishing while the daemon consumes
  qos1-live     bench/mqtt_publish.py (paho, 1000 in flight) publishing while the daemon consumes
  qos1-backlog  N messages queued in the daemon's persistent session while it is down, then drained
Prints msg/s, the daemon's CPU per message (what a free core would allow) and its peak RSS.
Usage: .venv/bin/python bench/mqtt.py [-n 100000] [--mode qos0-live ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import cpu_seconds, peak_rss_mib

from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.mosquitto import Mosquitto

MODES = ("qos0-live", "qos1-live", "qos1-backlog")
TOPIC = "bench/s1/h1/events"
PUBLISHER = Path(__file__).with_name("mqtt_publish.py")


def run(mode: str, n: int, workdir: Path) -> None:
    qos = 0 if mode.startswith("qos0") else 1
    broker = Mosquitto.create(workdir / "broker")
    broker.start()
    port = free_port()
    sub = {"name": "ev", "topic": "bench/{site}/{host}/events", "qos": qos, "defaults": {"type": "x"}}
    broker_cfg = {"name": "bench", "port": broker.port, "client_id": "bench", "max_buffered_qos0": 1_000_000}
    mqtt = {"brokers": [broker_cfg], "subscriptions": [sub]}
    cfg = base_config(workdir, port, collectors={"mqtt": mqtt}, logging={"level": "warning"})
    d = DaemonProcess(workdir, cfg, port)
    lines = b"".join(
        orjson.dumps({"severity": "minor", "message": f"event {i}", "attributes": {"seq": i}}) + b"\n"
        for i in range(n)
    )
    try:
        d.start()
        _wait_connected(d)
        if mode == "qos1-backlog":
            d.stop()
            _publish(broker, lines, qos)
            t0 = time.perf_counter()
            d.start()
            cpu0 = 0.0
        else:
            cpu0 = cpu_seconds(_pid(d))
            t0 = time.perf_counter()
            _publish(broker, lines, qos)
        t_pub = time.perf_counter() - t0
        stored, t_all, t_durable = _wait_stored(d, n, t0)
        cpu_us = (cpu_seconds(_pid(d)) - cpu0) / max(stored, 1) * 1e6
        pub = "" if mode == "qos1-backlog" else f"; publisher done after {t_pub:.2f}s"
        print(
            f"{mode}: {int(stored)}/{n} stored in {t_all:.2f}s = {stored / t_all:,.0f} msg/s end to end "
            f"(all durable, i.e. acknowledgeable, after {t_durable:.2f}s); "
            f"daemon CPU {cpu_us:.0f} us/msg (~{1e6 / cpu_us:,.0f} msg/s per free core); "
            f"daemon peak RSS {peak_rss_mib(_pid(d)):.0f} MB{pub}",
            flush=True,
        )
        if stored < n:
            got = d.metric("correlator_mqtt_messages_total", {"broker": "bench"})
            print(f"  incomplete: the daemon received {got:.0f} messages", flush=True)
    finally:
        d.stop()
        broker.stop()


def _publish(broker: Mosquitto, lines: bytes, qos: int) -> None:
    if qos == 0:
        cmd = ["mosquitto_pub", "-p", str(broker.port), "-t", TOPIC, "-q", "0", "-l"]
    else:  # mosquitto_pub -l loses QoS 1 messages at end of input (2.0.11)
        cmd = [sys.executable, str(PUBLISHER), str(broker.port), TOPIC, "1"]
    subprocess.run(cmd, input=lines, check=True, stderr=subprocess.DEVNULL)


def _wait_connected(d: DaemonProcess) -> None:
    d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "bench"}) == 1, what="connected")


def _wait_stored(d: DaemonProcess, n: int, t0: float) -> tuple[float, float, float]:
    """(events stored, seconds from t0 until stored, until durable); gives up after 10 s without progress."""
    stored, last, last_change = 0.0, -1.0, time.perf_counter()
    t_durable = 0.0
    while stored < n:
        stored = d.metric("correlator_events_stored_total")
        now = time.perf_counter()
        if not t_durable and d.metric("correlator_events_received_total") >= n:
            t_durable = now - t0
        if stored != last:
            last_change, last = now, stored
        elif now - last_change > 10:
            return stored, last_change - t0, t_durable
        time.sleep(0.1)
    t = time.perf_counter() - t0
    return stored, t, t_durable or t


def _pid(d: DaemonProcess) -> int:
    assert d.proc is not None
    return d.proc.pid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--messages", type=int, default=100_000)
    p.add_argument("--mode", choices=MODES, action="append")
    args = p.parse_args()
    for mode in args.mode or MODES:
        with tempfile.TemporaryDirectory(prefix=f"bench-mqtt-{mode}-") as tmp:
            run(mode, args.messages, Path(tmp))


if __name__ == "__main__":
    main()
