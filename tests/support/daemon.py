"""Start the real `correlator run` as a subprocess on a free port, and talk to it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_tool(name: str, package: str) -> str:
    """Path of a system tool, or skip the test saying which Debian package provides it."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        pytest.skip(f"{name} not installed: run `make test` as root or `apt-get install -y {package}`")
    return path


@dataclass
class DaemonProcess:
    workdir: Path
    config: dict[str, Any]
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        cfg_path = self.workdir / "correlator.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "correlator", "run", "--config", str(cfg_path)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not answer /healthz in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path: str) -> tuple[int, Any]:
        status, _, body = self.request("GET", path)
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError:
            return status, body.decode(errors="replace")

    def post_json(self, path: str, doc: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = {"Content-Type": "application/json", **(headers or {})}
        status, _, body = self.request("POST", path, orjson.dumps(doc), h)
        return status, orjson.loads(body) if body else None

    def wait_for(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        """Poll until predicate() is truthy (the daemon works asynchronously; this is not a sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n--- daemon log ---\n{self.log()}")

    def events(self, query: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            sep = "&" if query else ""
            path = f"/api/v1/events?limit=1000{sep}{query}" + (f"&cursor={cursor}" if cursor else "")
            status, doc = self.get(path)
            assert status == 200, doc
            out.extend(doc["events"])
            if not doc["next_cursor"]:
                return out
            cursor = doc["next_cursor"]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Value of one sample from /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, _, body = self.request("GET", "/metrics")
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(s.value)
        return 0.0


def base_config(workdir: Path, port: int, **extra: Any) -> dict[str, Any]:
    """A test daemon's configuration. Its rules_dir is an empty directory of the test's own, so the
    shipped rules (which drop, classify and de-duplicate) never surprise a test that is not about
    them; pass rules_dir=str(REPO / "rules") to run with the shipped set."""
    empty_rules = workdir / "rules"
    empty_rules.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "http": {"listen": f"127.0.0.1:{port}"},
        "storage": {"data_dir": str(workdir / "var"), "fsync": True},
        "rules_dir": str(empty_rules),
        "shutdown_grace": "10s",
        # The SNMP collector (on by default) would bind UDP 1162 in every test daemon (and in
        # parallel runs). Tests that want it pass collectors={"snmp": {...}} with a free port.
        "collectors": {"webhook": {}, "snmp": {"enabled": False}},
    }
    # CORRELATOR_TEST_HTTP_WORKERS=2 runs every test daemon with HTTP workers (docs/architecture.md).
    if os.environ.get("CORRELATOR_TEST_HTTP_WORKERS"):
        cfg["http"]["workers"] = int(os.environ["CORRELATOR_TEST_HTTP_WORKERS"])
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def child_pids(pid: int) -> list[int]:
    """The running processes whose parent is pid (the daemon's HTTP workers)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":  # a killed worker not yet reaped is not one of them
            out.append(int(entry))
    return out


def pid_holding(client: socket.socket) -> int | None:
    """The process holding the server side of a loopback TCP connection made by `client`."""
    cport, sport = client.getsockname()[1], client.getpeername()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
        # The server's side: its local port is the server's, its remote port is ours. Inode 0: not
        # accepted yet (still in the listen backlog), so no process holds it.
        if local == sport and remote == cport and parts[9] != "0":
            inode = parts[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    return int(entry)
        except OSError:
            continue
    return None


def alive(pid: int) -> bool:
    """True while the process runs (a zombie left for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
