"""Publish stdin lines as MQTT messages and wait until the broker has them all (PUBACK for QoS 1).

The benchmark's publisher process. `mosquitto_pub -l` (Mosquitto 2.0.11) exits at end of input
before its QoS 1 queue is sent and loses messages, so it cannot measure QoS 1.
Usage: mqtt_publish.py PORT TOPIC QOS < lines
"""

from __future__ import annotations

import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    port, topic, qos = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    lines = sys.stdin.buffer.read().splitlines()
    n = len(lines)
    acked = 0

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        acked += 1

    # One thread, our own loop: keep at most `window` messages unacknowledged.
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    window = 1000 if qos else 100_000
    c.max_inflight_messages_set(window)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    t0 = time.perf_counter()
    sent = 0
    while acked < n:
        while sent < n and sent - acked < window:
            c.publish(topic, lines[sent], qos=qos)
            sent += 1
        c.loop(timeout=0.01)
        if time.perf_counter() - t0 > 600:
            sys.exit(f"only {acked} of {n} messages acknowledged")
    print(f"published {n} in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    c.disconnect()


if __name__ == "__main__":
    main()
