"""The command line: configuration errors stop start-up with the key named; JSON logs; version."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.support.daemon import free_port

pytestmark = pytest.mark.integration


def run(*args, cwd=None, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def test_bad_config_value_stops_startup_naming_key_and_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http:\n  listen: 127.0.0.1:1\nstorage:\n  retention: soon\n")
    r = run("run", "--config", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}:4:14: 'storage.retention': expected a duration" in r.stderr


def test_unknown_collector_stops_startup(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"http: {{listen: '127.0.0.1:1'}}\nstorage: {{data_dir: '{tmp_path}'}}\ncollectors:\n  pigeon: {{}}\n"
    )
    r = run("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "'collectors.pigeon': no such collector" in r.stderr


def test_bad_flag_value(tmp_path):
    r = run("run", "--http", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and "'http.listen': expected HOST:PORT" in r.stderr


def test_json_logs(make_daemon):
    d = make_daemon(logging={"format": "json"})
    d.stop()
    lines = [orjson.loads(line) for line in d.log().splitlines() if line.startswith("{")]
    assert any(doc["msg"].startswith("correlator listening") for doc in lines)
    # each collector started, with where it listens (the test daemons switch SNMP off)
    started = [doc["msg"] for doc in lines if doc["msg"].startswith("collector ")]
    assert started == [
        "collector webhook started: POST /api/v1/events and /api/v1/webhooks/{source} on the HTTP API"
    ]
    assert all({"ts", "level", "logger", "msg"} <= doc.keys() for doc in lines)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("correlator ")


def test_port_in_use_is_a_clear_error(make_daemon, tmp_path):
    d = make_daemon()
    other = tmp_path / "other"
    other.mkdir()
    r = run("run", "--http", f"127.0.0.1:{d.port}", "--data", str(other / "var"), cwd=other)
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{d.port}" in r.stderr
    assert "Traceback" not in r.stderr and "CancelledError" not in r.stderr


def test_a_second_daemon_on_the_same_data_directory_is_refused(make_daemon, tmp_path):
    first = make_daemon()
    assert first.post_json("/api/v1/events", {"host": "h1", "type": "t", "id": "before"})[0] == 202
    first.wait_for(lambda: first.events("host=h1"), what="the event stored")
    other = tmp_path / "other"
    other.mkdir()
    r = run(
        "run", "--config", str(tmp_path / "correlator.yaml"), "--http", f"127.0.0.1:{free_port()}", cwd=other
    )
    assert r.returncode == 1
    # the rules were checked (validation comes first), then the refusal: one line, no traceback
    assert "Traceback" not in r.stderr and "listening" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith("correlator: data directory"), r.stderr
    assert f"data directory {tmp_path / 'var'} is in use by another correlator process" in r.stderr
    assert f"(pid {first.proc.pid})" in r.stderr
    assert [e["id"] for e in first.events("host=h1")] == ["before"]  # the first one runs on


def test_every_section_error_is_shown_in_one_run(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text("rules:\n  - name: x\n    match: {host: a}\n    drop: maybe\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"http: {{listen: '127.0.0.1:{free_port()}'}}\n"
        f"storage: {{data_dir: '{tmp_path / 'var'}'}}\n"
        f"rules_dir: '{rules}'\n"
        "incidents: {reopen_widow: 1h}\n"
        "problems: {treshold: 3}\n"
        "collectors: {snmp: {enabled: false}, webhook: {tokne: x}}\n"
    )
    r = run("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "reopen_widow" in r.stderr and "treshold" in r.stderr, r.stderr
    assert "error(s) in the rules" in r.stderr and "bad.yaml:4" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "var").exists()  # stopped before touching any state
