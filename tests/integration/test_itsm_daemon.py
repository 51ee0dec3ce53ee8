"""Change and Problem management against the real daemon: the CLI, calendar windows, suppression on
the wire, change events through the ingest path, a broken calendar stopping start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from correlator.event import iso

pytestmark = pytest.mark.integration


def cli(d, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRELATOR_URL": d.url}
    env.pop("CORRELATOR_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args], capture_output=True, text=True, env=env, timeout=30
    )


def test_change_window_suppresses_on_the_wire_and_its_events_are_stored(make_daemon, tmp_path: Path):
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=5), now + timedelta(hours=1)
    cal = tmp_path / "calendar.yaml"
    # A daily window open right now for 'site-a'; the daemon creates and starts it by itself.
    cal.write_text(
        "windows:\n  - name: site-a-daily\n    days: daily\n"
        f"    start: '{start:%H:%M}'\n    end: '{end:%H:%M}'\n    cis: [site-a-rtr]\n"
        "dependencies:\n  core-sw1: [app1]\n"
    )
    d = make_daemon(changes={"calendar": str(cal), "dependents_policy": "tag"})
    r = cli(d, "changes", "create", "--title", "IOS upgrade", "--start", iso(start.timestamp()),
            "--end", iso(end.timestamp()), "--ci", "core-sw1", "--risk", "high")  # fmt: skip
    assert r.returncode == 0, r.stderr
    created = r.stdout.split()[0]
    assert r.stdout.strip() == f"{created} is requested"
    for action in ("approve", "start"):
        assert cli(d, "changes", action, created, "--note", "go").returncode == 0
    d.wait_for(lambda: d.events("type=change.started"), what="change events stored")
    started = {e["attributes"]["change_id"] for e in d.events("type=change.started")}
    assert created in started and len(started) == 2  # the API change and the calendar occurrence

    for host in ("core-sw1", "app1", "site-a-rtr", "elsewhere"):
        assert (
            d.post_json("/api/v1/events", {"host": host, "type": "linkDown", "severity": "major"})[0] == 202
        )
    stored = d.wait_for(lambda: len(evs := d.events("type=linkDown")) == 4 and evs, what="4 events stored")
    by_host = {e["host"]: e["attributes"] for e in stored}
    assert by_host["core-sw1"] == {"change_id": created, "maintenance": "suppress"}
    assert by_host["app1"] == {"change_id": created, "maintenance": "tag"}
    assert by_host["site-a-rtr"]["maintenance"] == "suppress" and by_host["elsewhere"] == {}
    assert d.metric("correlator_maintenance_events_total", {"action": "suppressed"}) == 2

    r = cli(d, "changes", "complete", created)
    assert r.returncode == 0 and r.stdout.strip() == f"{created} is completed"
    r = cli(d, "changes", "fail", created)
    assert r.returncode == 1 and "no linked incident" in r.stderr
    r = cli(d, "changes", "list", "--state", "in_progress")
    assert "maintenance window site-a-daily" in r.stdout and created not in r.stdout
    assert d.metric("correlator_change_outcomes_total", {"outcome": "completed"}) == 1

    match = tmp_path / "match.yaml"
    match.write_text("host: {glob: 'db*'}\n")
    r = cli(
        d, "known-errors", "create", "--title", "SAN fw", "--match", str(match), "--workaround", "fail over"
    )
    assert r.returncode == 0 and r.stdout.strip() == "KE-000001 is active", r.stderr
    r = cli(d, "problems", "trend", "--since", "1d")
    assert r.returncode == 0 and r.stdout.startswith("since ")
    d.stop()
    d.start()  # records survive a restart; calendar occurrences are not created twice
    r = cli(d, "changes", "--json", "list")
    changes = orjson.loads(r.stdout)["changes"]
    # today's occurrence (in progress), tomorrow's (within the 1 day horizon: approved), the API change
    assert sorted((c["calendar"] is not None, c["state"]) for c in changes) == [
        (False, "completed"), (True, "approved"), (True, "in_progress"),
    ], changes  # fmt: skip


def test_a_broken_calendar_stops_start_up_with_its_position(make_daemon, tmp_path: Path):
    cal = tmp_path / "calendar.yaml"
    cal.write_text(
        "windows:\n  - name: w\n    days: [sunday, funday]\n    start: '02:00'\n    end: '04:00'\n    cis: [a]\n"
    )
    d = make_daemon(start=False, changes={"calendar": str(cal)})
    with pytest.raises(RuntimeError, match="daemon exited with 2"):
        d.start(timeout=10)
    assert f"{cal}:3:11: unknown day 'funday'" in d.log()
    r = subprocess.run([sys.executable, "-m", "correlator", "changes", "check-calendar", str(cal)],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 1 and f"{cal}:3:11: unknown day 'funday'" in r.stderr


def test_the_calendar_reloads_on_sighup_api_and_file_change_and_a_broken_one_keeps_serving(
    make_daemon, tmp_path: Path
):
    later = datetime.now(UTC) + timedelta(hours=3)  # daily windows: one occurrence each within the horizon

    def window(name: str, ci: str, hours: int = 0) -> str:
        start = later + timedelta(hours=hours)
        end = start + timedelta(hours=1)
        return f"  - {{name: {name}, days: daily, start: '{start:%H:%M}', end: '{end:%H:%M}', cis: [{ci}]}}\n"

    def calendar_changes() -> dict[tuple[str, str], dict]:
        status, doc = d.get("/api/v1/changes?limit=500")
        assert status == 200, doc
        return {(c["calendar"].split("@")[0], c["state"]): c for c in doc["changes"] if c["calendar"]}

    cal = tmp_path / "calendar.yaml"
    cal.write_text("windows:\n" + window("a", "rtr-a") + window("b", "rtr-b", hours=2))
    d = make_daemon(changes={"calendar": str(cal)})
    d.wait_for(lambda: len(calendar_changes()) == 2, what="the two occurrences created")

    # SIGHUP: b removed, a moved to another CI -> both withdrawn, a created again with the new CI.
    # The watcher sees the same save: whichever comes first reloads, the other finds the file
    # unchanged and does nothing (one reload, one audit note).
    cal.write_text("windows:\n" + window("a", "rtr-a2"))
    d.proc.send_signal(signal.SIGHUP)
    changes = d.wait_for(lambda: len(cs := calendar_changes()) == 3 and cs, what="the reload applied")
    assert set(changes) == {("a", "cancelled"), ("b", "cancelled"), ("a", "approved")}, changes
    assert changes[("a", "approved")]["cis"] == ["rtr-a2"] and not changes[("a", "approved")]["withdrawn"]
    removed = changes[("b", "cancelled")]
    assert removed["withdrawn"] is True
    status, doc = d.get(f"/api/v1/changes/{removed['id']}")
    assert status == 200 and doc["log"][-1]["actor"] == "calendar"
    assert doc["log"][-1]["detail"]["note"] in {
        "calendar reload (SIGHUP): window b removed",
        "calendar reload (file change): window b removed",
    }
    # SIGHUP on an unchanged file: a no-op, said in the log
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(
        lambda: "calendar reload (SIGHUP): files unchanged since the last reload" in d.log(),
        what="SIGHUP noticed",
    )
    assert {c["id"] for c in calendar_changes().values()} == {c["id"] for c in changes.values()}
    assert d.metric("correlator_calendar_reload_failures_total") == 0
    assert d.proc.poll() is None

    # A broken file: the reload API answers 422 with file:line; the last good calendar keeps serving
    cal.write_text(
        "windows:\n  - name: a\n    days: [sun, funday]\n    start: '02:00'\n    end: '03:00'\n    cis: [x]\n"
    )
    status, result = d.post_json("/api/v1/rules/reload", {})
    assert status == 422 and result["ok"] is False and result["calendar"]["ok"] is False, result
    [err] = result["errors"]
    assert (err["file"], err["line"], err["column"]) == (str(cal), 3, 11)
    assert err == result["calendar"]["errors"][0]
    assert f"{cal}:3:11: unknown day 'funday'" in d.log()
    assert result["calendar"]["windows"] == 1 and result["active_rules"] == 0
    assert d.metric("correlator_calendar_reload_failures_total") == 1
    assert d.metric("correlator_calendar_reload_failed") == 1
    assert d.get("/api/v1/rules")[1]["calendar"]["ok"] is False
    assert set(calendar_changes()) == set(changes)  # nothing withdrawn by the broken file

    # Fixed in place: the watcher reloads it
    cal.write_text("windows:\n" + window("a", "rtr-a2"))
    d.wait_for(
        lambda: (c := d.get("/api/v1/rules")[1]["calendar"])["ok"] and c["trigger"] == "file change",
        what="file change reload",
    )
    assert d.metric("correlator_calendar_reload_failed") == 0
    status, result = d.post_json("/api/v1/rules/reload", {})  # the same file: the last outcome again
    assert status == 200 and result["ok"] and result["calendar"]["withdrawn"] == [], result
    assert result["calendar"]["trigger"] == "file change"
