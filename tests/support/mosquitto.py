"""Start a real Mosquitto broker on a free 127.0.0.1 port (persistence on), and publish to it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.daemon import free_port, need_tool


@dataclass
class Mosquitto:
    workdir: Path
    port: int
    binary: str
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, workdir: Path) -> Mosquitto:
        binary = need_tool("mosquitto", "mosquitto")
        workdir.mkdir(parents=True, exist_ok=True)
        b = cls(workdir, free_port(), binary)
        (workdir / "mosquitto.conf").write_text(
            f"listener {b.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            # The defaults (1000 queued, 20 in flight) drop messages for a slow or absent
            # persistent subscriber and throttle ack-after-durable to 20 messages per commit.
            "max_queued_messages 1000000\n"
            "max_inflight_messages 2000\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )
        return b

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the persistence file on the way out
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def publish(self, messages: list[tuple[str, bytes | str]], qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has every message (PUBACK for QoS 1)."""
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            infos = [c.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
            for info in infos:
                info.wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()
