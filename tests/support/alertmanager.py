"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 for tests: as a
sender of webhooks to the daemon, or as a receiver of the alerts the daemon posts."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.support.daemon import free_port, need_tool


def webhook_receiver(receiver_url: str, token: str) -> dict[str, Any]:
    """A configuration that sends every alert group to `receiver_url` with a bearer token, quickly."""
    return {
        "route": {
            "receiver": "correlator",
            "group_by": ["alertname", "instance"],
            "group_wait": "100ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "correlator",
                "webhook_configs": [
                    {
                        "url": receiver_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


def no_receiver(resolve_timeout: str = "5m") -> dict[str, Any]:
    """A configuration that only keeps alerts (read back through its API)."""
    return {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {"receiver": "none"},
        "receivers": [{"name": "none"}],
    }


class Alertmanager:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.binary = need_tool("prometheus-alertmanager", "prometheus-alertmanager")
        self.workdir = workdir
        self.port = free_port()
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        log = (self.workdir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--storage.path={self.workdir / 'data'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(self.workdir / 'alertmanager.log').read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post_alerts(self, alerts: list[dict]) -> None:
        req = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=orjson.dumps(alerts),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds that have not ended (GET /api/v2/alerts leaves out resolved ones)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=10) as r:
            return orjson.loads(r.read())
