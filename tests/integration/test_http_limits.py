"""The daemon's HTTP exposure: an open listener is refused, token files are read, and slow or idle
connections (a slowloris) neither keep /healthz from answering nor stay open past their timeouts."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys

import orjson
import pytest
import yaml

from correlator.api.auth import hash_token
from tests.support.daemon import DaemonProcess, base_config, free_port

pytestmark = pytest.mark.integration


def run_refused(tmp_path, cfg) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "correlator.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "correlator", "run", "--config", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_non_loopback_listener_without_tokens_is_refused(tmp_path):
    cfg = base_config(tmp_path, free_port(), http={"listen": f"0.0.0.0:{free_port()}"})
    r = run_refused(tmp_path, cfg)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("correlator: configuration error: 'http.listen': refusing to listen on 0.0.0.0:")
    assert "without API tokens (http.tokens or http.tokens_file) and an ingest token" in line
    assert "http.allow_open: true" in line
    assert not (tmp_path / "var" / "journal.db").exists()  # refused before any file was opened


@pytest.mark.parametrize("webhook", [None, {}])
def test_webhook_with_no_value_needs_an_ingest_token_like_an_empty_one(tmp_path, webhook):
    # `webhook:` (no value) turns the collector on with default settings, as `webhook: {}` does
    (tmp_path / "tokens.yaml").write_text(
        yaml.safe_dump({"noc": {"role": "operator", "sha256": hash_token("api-secret")}})
    )
    port = free_port()
    cfg = base_config(
        tmp_path, port, http={"listen": f"0.0.0.0:{port}", "tokens_file": str(tmp_path / "tokens.yaml")}
    )
    cfg["collectors"]["webhook"] = webhook
    r = run_refused(tmp_path, cfg)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(
        f"correlator: configuration error: 'http.listen': refusing to listen on 0.0.0.0:{port} without "
        "an ingest token (collectors.webhook.token or token_file); "
    )
    assert not (tmp_path / "var" / "journal.db").exists()


def test_tokens_from_files_open_the_listener_and_guard_it(tmp_path):
    (tmp_path / "tokens.yaml").write_text(
        yaml.safe_dump({"noc": {"role": "operator", "sha256": hash_token("api-secret")}})
    )
    (tmp_path / "ingest-token").write_text("ingest-secret\n")
    port = free_port()
    cfg = base_config(
        tmp_path,
        port,
        http={"listen": f"0.0.0.0:{port}", "tokens_file": str(tmp_path / "tokens.yaml")},
        collectors={"webhook": {"token_file": str(tmp_path / "ingest-token")}},
    )
    d = DaemonProcess(tmp_path, cfg, port)
    d.start()
    try:
        assert d.request("GET", "/api/v1/events")[0] == 401
        assert d.request("GET", "/api/v1/events", headers={"Authorization": "Bearer api-secret"})[0] == 200
        event = orjson.dumps({"host": "sw1", "type": "linkDown"})
        ctype = {"Content-Type": "application/json"}
        assert d.request("POST", "/api/v1/events", event, ctype)[0] == 401
        ok = d.request("POST", "/api/v1/events", event, {**ctype, "Authorization": "Bearer ingest-secret"})
        assert ok[0] == 202
        assert "api-secret" not in d.log() and "ingest-secret" not in d.log()
    finally:
        d.stop()


def test_a_slowloris_neither_blocks_healthz_nor_outlives_the_timeouts(make_daemon):
    d = make_daemon(start=False, http={"max_connections": 60, "idle_timeout": "1s", "body_timeout": "1s"})
    # The daemon gets 256 file descriptors (inherited from this process for the moment of the start),
    # so 300 connections held open would exhaust them without the cap.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        d.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle = []
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        if i % 2:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        idle.append(s)
    try:
        assert d.get("/healthz") == (200, {"status": "ok"})
        # A body that stops half-way gets a JSON 408 once body_timeout has passed.
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as slow:
            slow.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            head, _, body = recv_all(slow).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and orjson.loads(body) == {
            "error": "request body not received within 1s"
        }
        # The idle and half-sent connections still open are closed by idle_timeout.
        for s in idle[-10:]:
            assert recv_all(s) == b""
        assert d.metric("correlator_http_connections_closed_total", {"reason": "idle_evicted"}) >= 240
        assert d.metric("correlator_http_connections_closed_total", {"reason": "body_timeout"}) == 1
        assert d.metric("correlator_http_connections") <= 2
    finally:
        for s in idle:
            s.close()


def recv_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out
