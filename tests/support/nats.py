"""A throw-away 3-node NATS JetStream cluster (Debian `nats-server`) on free loopback ports, so R3
streams and KV buckets behave as in production. Never the machine-wide server on 4222."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from correlator.cluster.bus import Bus
from correlator.cluster.consume import PartitionQueue
from correlator.cluster.publish import BusQueue
from tests.support.daemon import free_port, need_tool


@dataclass
class NatsNode:
    index: int
    port: int
    cluster_port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class NatsCluster:
    binary: str
    workdir: Path
    nodes: list[NatsNode] = field(default_factory=list)

    @classmethod
    def create(cls, binary: str, size: int = 3) -> NatsCluster:
        workdir = Path(tempfile.mkdtemp(prefix="correlator-test-nats-"))
        c = cls(binary, workdir)
        for i in range(size):
            c.nodes.append(NatsNode(i, free_port(), free_port(), workdir / f"n{i}"))
        return c

    @property
    def servers(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout)

    def start_node(self, node: NatsNode) -> None:
        routes = ",".join(f"nats://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        args = [
            self.binary, "-a", "127.0.0.1", "-p", str(node.port), "-js", "-sd", str(node.store),
            "--name", f"n{node.index}", "--cluster_name", "correlator-test",
            "--cluster", f"nats://127.0.0.1:{node.cluster_port}", "--routes", routes,
        ]  # fmt: skip
        log = (self.workdir / f"n{node.index}.log").open("ab")
        node.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def stop_node(self, node: NatsNode, sig: int = signal.SIGTERM) -> None:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(sig)
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        node.proc = None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every node accepts connections and JetStream has a meta leader (a stream can be made)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not _answers(node.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats node {node.index} not listening:\n{self.log()}")
                time.sleep(0.05)
        while not _jetstream_ready(self.nodes[0].port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"JetStream cluster has no leader after {timeout:.0f}s:\n{self.log()}")
            time.sleep(0.2)
        # A leader can be elected before every peer has joined the meta group; until then a stream
        # with one replica per node is refused ("no suitable peers for placement").
        while not _placeable(self.nodes[0].port, len(self.nodes)):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JetStream cannot place {len(self.nodes)} replicas after {timeout:.0f}s:\n{self.log()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            self.stop_node(node)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(self.workdir.glob("n*.log")))


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _jetstream_ready(port: int) -> bool:
    """$JS.API.INFO answers with account info once the meta group has a leader."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.recv(4096)
            s.sendall(
                b'CONNECT {"verbose":false}\r\nSUB _INBOX.t 1\r\nPUB $JS.API.INFO _INBOX.t 0\r\n\r\nPING\r\n'
            )
            data = b""
            end = time.monotonic() + 1.0
            while time.monotonic() < end and not (b"MSG _INBOX.t" in data and data.endswith(b"}\r\n")):
                data += s.recv(4096)
            return b"MSG _INBOX.t" in data and b'"error"' not in data
    except OSError:
        return False


def _request(port: int, subject: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        s.recv(4096)
        s.sendall(
            b'CONNECT {"verbose":false}\r\nSUB _INBOX.p 1\r\n'
            + b"PUB %s _INBOX.p %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(body), body)
        )
        data = b""
        end = time.monotonic() + 2.0
        while time.monotonic() < end and not (b"MSG _INBOX.p" in data and data.endswith(b"}\r\n")):
            data += s.recv(4096)
        return data


def _placeable(port: int, replicas: int) -> bool:
    """A stream with `replicas` replicas can be made (then it is deleted again)."""
    config = (
        b'{"name":"readiness","subjects":["readiness.probe"],"storage":"memory","num_replicas":%d}' % replicas
    )
    try:
        made = _request(port, "$JS.API.STREAM.CREATE.readiness", config)
        if b"MSG _INBOX.p" not in made or b'"error"' in made:
            return False
        _request(port, "$JS.API.STREAM.DELETE.readiness", b"")
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    binary = need_tool("nats-server", "nats-server")
    cluster = NatsCluster.create(binary)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def worker_queue(bus: Bus, max_events: int) -> PartitionQueue:
    """A worker's queue as `--role worker` makes it, its own events routed by host."""
    outbox = BusQueue(bus, lambda ev: "host:" + ev.host, max_events, 1.0, gauges=False)
    return PartitionQueue(bus, max_events, outbox)
