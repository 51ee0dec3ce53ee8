"""`correlator backup` while the daemon runs, `correlator restore` into a stopped one: nothing lost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.daemon import DaemonProcess, free_port

pytestmark = pytest.mark.integration


def cli(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_backup_of_a_running_daemon_restores_incidents_changes_and_events(make_daemon, tmp_path):
    d = make_daemon()
    status, doc = d.post_json("/api/v1/incidents", {"title": "core-sw1 down", "host": "core-sw1"})
    assert status == 201, doc
    incident = doc["incident"]["id"]
    change = {
        "title": "IOS upgrade",
        "start": "2027-01-17T02:00:00Z",
        "end": "2027-01-17T03:00:00Z",
        "cis": ["core-sw1"],
    }
    status, doc = d.post_json("/api/v1/changes", change)
    assert status == 201, doc
    change_id = doc["change"]["id"]
    assert d.post_json("/api/v1/events", {"host": "h1", "type": "linkDown", "id": "ev-1"})[0] == 202
    d.wait_for(lambda: d.events("host=h1"), what="the event stored")

    # The daemon runs on: the copy is taken from its live files.
    r = cli(tmp_path, "backup", str(tmp_path / "bk"), "--config", str(tmp_path / "correlator.yaml"))
    assert r.returncode == 0, r.stderr
    for name in ("journal.db", "events.db", "incidents.db", "records.db"):
        assert name in r.stdout and (tmp_path / "bk" / name).exists()
    # Restoring over the running daemon's directory is refused, and nothing is touched.
    r = cli(tmp_path, "restore", str(tmp_path / "bk"), "--config", str(tmp_path / "correlator.yaml"))
    assert r.returncode == 1 and "is in use by another correlator process" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    d.stop()

    # A new machine: an empty data directory, restored, then a daemon started on it.
    restored = tmp_path / "restored"
    restored.mkdir()
    r = cli(restored, "restore", str(tmp_path / "bk"), "--data", str(restored / "var"))
    assert r.returncode == 0, r.stderr
    again = cli(restored, "restore", str(tmp_path / "bk"), "--data", str(restored / "var"))
    assert again.returncode == 1 and "add --force" in again.stderr  # never over data by surprise
    port = free_port()
    config = {
        **d.config,
        "http": {"listen": f"127.0.0.1:{port}"},
        "storage": {**d.config["storage"], "data_dir": str(restored / "var")},
    }
    d2 = DaemonProcess(restored, config, port)
    try:
        d2.start()
        assert d2.get(f"/api/v1/incidents/{incident}")[1]["incident"]["title"] == "core-sw1 down"
        assert d2.get(f"/api/v1/changes/{change_id}")[1]["change"]["title"] == "IOS upgrade"
        assert [e["id"] for e in d2.events("host=h1")] == ["ev-1"]
    finally:
        d2.stop()


def test_restore_refuses_a_directory_that_is_not_a_backup(tmp_path):
    r = cli(tmp_path, "restore", str(tmp_path), "--data", str(tmp_path / "var"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"correlator: {tmp_path}: not a correlator backup (no correlator-backup.json)"
