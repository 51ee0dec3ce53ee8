"""Start a real Mosquitto broker on a free 127.0.0.1 port (persistence on), and publish to it."""

from __future__ import annotations

import getpass
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.daemon import free_port, need_tool


@dataclass
class Mosquitto:
    workdir: Path
    port: int
    binary: str
    proc: subprocess.Popen[bytes] | None = None

    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def create(
        cls, workdir: Path, tls: bool = False, user: tuple[str, str] | None = None, acl: str | None = None
    ) -> Mosquitto:
        """A broker config; `tls` makes a CA and a server certificate for 127.0.0.1, `user` requires it,
        `acl` is the text of an acl_file (Mosquitto's `user NAME` / `topic read|write|readwrite T` lines)."""
        binary = need_tool("mosquitto", "mosquitto")
        workdir.mkdir(parents=True, exist_ok=True)
        b = cls(workdir, free_port(), binary)
        extra = ""
        if tls:
            b.ca_file = make_certificates(workdir)
            extra += f"cafile {b.ca_file}\ncertfile {workdir}/server.crt\nkeyfile {workdir}/server.key\n"
        if user is not None:
            passwd = workdir / "passwd"
            subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), *user], check=True)
            b.username, b.password = user
            extra += f"password_file {passwd}\n"
        if acl is not None:
            (workdir / "acl").write_text(acl)
            extra += f"acl_file {workdir / 'acl'}\n"
        (workdir / "mosquitto.conf").write_text(
            f"listener {b.port} 127.0.0.1\n"
            # Run as ourselves: as root Mosquitto would switch to user 'mosquitto', which
            # cannot read or write the test's temp directory (log, persistence, passwords).
            f"user {getpass.getuser()}\n"
            f"allow_anonymous {'false' if user else 'true'}\n"
            f"{extra}"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            # The defaults (1000 queued, 20 in flight) drop messages for a slow or absent
            # persistent subscriber and throttle ack-after-durable to 20 messages per commit.
            "max_queued_messages 1000000\n"
            "max_inflight_messages 10000\n"
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

    def set_password(self, user: str, password: str) -> None:
        """Change a user's password in the password file and have the running broker reload it."""
        subprocess.run(["mosquitto_passwd", "-b", str(self.workdir / "passwd"), user, password], check=True)
        if user == self.username:
            self.password = password
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)  # rereads password_file and acl_file

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def publish(self, messages: list[tuple[str, bytes | str]], qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has every message (PUBACK for QoS 1)."""
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        if self.ca_file is not None:
            c.tls_set(ca_certs=str(self.ca_file))
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            infos = [c.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
            for info in infos:
                info.wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()


def make_certificates(workdir: Path) -> Path:
    """A throw-away CA and a server certificate for IP 127.0.0.1 (openssl); returns the CA file."""
    ssl = need_tool("openssl", "openssl")

    def run(*args: str) -> None:
        subprocess.run([ssl, *args], cwd=workdir, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    return workdir / "ca.crt"


def mqtt_config(broker: Mosquitto, client_id: str, subscriptions: list[dict[str, Any]]) -> dict[str, Any]:
    """The daemon's `collectors` section for one broker named `lab` with fast reconnects."""
    return {
        "mqtt": {
            "brokers": [
                {
                    "name": "lab",
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "client_id": client_id,
                    "reconnect_min": "100ms",
                    "reconnect_max": "1s",
                }
            ],
            "subscriptions": subscriptions,
        }
    }
