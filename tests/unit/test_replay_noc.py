"""`correlator replay` runs the whole pipeline: given a recording, the rules, a maintenance calendar
and a changes file, it shows the incidents a NOC would have had, the change that caused one, the
event a window suppressed and the recurring problem, and sends nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from correlator.cli import main
from correlator.clock import Clock
from correlator.config import load_config
from correlator.event import parse_time
from correlator.incidents import IncidentService
from correlator.incidents import parse_settings as incident_settings
from correlator.incidents.backend import create_store
from correlator.incidents.store import IncidentQuery
from correlator.records.backend import create_record_store

T0 = parse_time("2026-11-30T10:00:00Z")  # a Monday

RULES = """
rules:
  - name: link
    kind: pair
    match: {type: linkDown}
    close: {type: linkUp}
    group_by: [host, resource]
    within: 30s
    on_timeout: [{incident: {action: open, title: "{host} {resource} down"}}]
    on_recover: [{incident: {action: resolve}}]
"""
CALENDAR = """
windows:
  - name: db-daily
    title: Daily database maintenance
    days: daily
    start: "11:00"
    end: "12:00"
    cis: [db1]
    policy: suppress
"""
CHANGES = """
changes:
  - title: Upgrade app1
    start: 2026-11-30T13:00:00Z
    end: 2026-11-30T13:30:00Z
    cis: [app1]
    implementer: ops
"""


def ev(minutes: float, host: str, type_: str, resource: str = "Gi0/1") -> dict[str, Any]:
    severity = "clear" if type_ == "linkUp" else "major"
    return {
        "host": host,
        "type": type_,
        "resource": resource,
        "severity": severity,
        "time": T0 + minutes * 60,
    }


EVENTS = [
    ev(0, "r1", "linkDown"),  # INC-000001 opens at the timeout (10:00:30) ...
    ev(2, "r1", "linkUp"),  # ... and is resolved
    ev(10, "r1", "linkDown"),  # within the reopen window: INC-000001 reopens at 10:10:30
    ev(12, "r1", "linkUp"),
    ev(70, "db1", "linkDown"),  # 11:10, inside the calendar window: suppressed, no incident
    ev(220, "app1", "linkDown"),  # 13:40, 10 min after the change: INC-000002, linked to it
    ev(240, "sw2", "linkDown", "Gi0/9"),  # sw2 Gi0/9 down three times, hours apart: a problem
    ev(245, "sw2", "linkUp", "Gi0/9"),
    ev(360, "sw2", "linkDown", "Gi0/9"),
    ev(365, "sw2", "linkUp", "Gi0/9"),
    ev(480, "sw2", "linkDown", "Gi0/9"),
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real TCP port for the notification target: replay must never connect to it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    s.setblocking(False)
    yield s
    s.close()


@pytest.fixture
def setup(tmp_path: Path, listener: socket.socket) -> dict[str, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(textwrap.dedent(RULES))
    (tmp_path / "calendar.yaml").write_text(textwrap.dedent(CALENDAR))
    (tmp_path / "changes.yaml").write_text(textwrap.dedent(CHANGES))
    port = listener.getsockname()[1]
    (tmp_path / "correlator.yaml").write_text(
        textwrap.dedent(f"""
        rules_dir: {rules}
        storage: {{data_dir: {tmp_path / "live-data"}}}
        changes: {{calendar: {tmp_path / "calendar.yaml"}}}
        incidents:
          notify:
            chatops: {{url: "http://127.0.0.1:{port}/hook", send_on: [open, resolve]}}
        """)
    )
    recording = tmp_path / "rec.ndjson"
    recording.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return {"config": tmp_path / "correlator.yaml", "rec": recording, "changes": tmp_path / "changes.yaml"}


def replay_json(setup: dict[str, Path], capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    args = ["replay", str(setup["rec"]), "--config", str(setup["config"]), "--changes", str(setup["changes"])]
    assert main([*args, "--wait", "5m", "--json", *extra]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_the_incident_table_a_noc_would_have_seen(setup, capsys, listener, tmp_path) -> None:
    doc = replay_json(setup, capsys)
    table = [
        (i["id"], i["host"], i["status"], i["opened_at"], i["reopen_count"], i["change_id"], i["problem_id"])
        for i in doc["incidents"]
    ]
    assert table == [
        ("INC-000001", "r1", "resolved", "2026-11-30T10:00:30Z", 1, None, None),
        ("INC-000002", "app1", "new", "2026-11-30T13:40:30Z", 0, "CHG-000001", None),
        ("INC-000003", "sw2", "resolved", "2026-11-30T14:00:30Z", 0, None, "PRB-000001"),
        ("INC-000004", "sw2", "resolved", "2026-11-30T16:00:30Z", 0, None, "PRB-000001"),
        ("INC-000005", "sw2", "new", "2026-11-30T18:00:30Z", 0, None, "PRB-000001"),
    ]
    first = doc["incidents"][0]
    assert (first["resolved_at"], first["reopened_at"]) == ("2026-11-30T10:12:00Z", "2026-11-30T10:10:30Z")
    assert [(e["time"], e["outcome"], e["type"]) for e in first["events"]] == [
        ("2026-11-30T10:00:30Z", "opened", "link.timeout"),
        ("2026-11-30T10:02:00Z", "resolved", "linkUp"),
        ("2026-11-30T10:10:30Z", "reopened", "link.timeout"),
        ("2026-11-30T10:12:00Z", "resolved", "linkUp"),
    ]
    assert doc["reduction"] == {"events_in": 11, "incidents": 5, "ratio": 2.2}
    [problem] = doc["problems"]
    assert (problem["id"], problem["state"]) == ("PRB-000001", "open")
    assert problem["incidents"] == ["INC-000003", "INC-000004", "INC-000005"]
    change = doc["changes"][0]
    assert (change["id"], change["title"], change["state"]) == ("CHG-000001", "Upgrade app1", "approved")
    assert change["incidents"] == ["INC-000002"] and change["suppressed"] == 0
    window = [c for c in doc["changes"] if c["calendar"] and c["start"] == "2026-11-30T11:00:00Z"]
    assert len(window) == 1 and window[0]["suppressed"] == 1
    assert doc["maintenance"] == {"suppressed": 1, "by_change": {window[0]["id"]: 1}}
    # Listed, not sent: opened and resolved notices for chatops, and nothing reached its port.
    kinds = [(n["kind"], n["incident"]) for n in doc["notifications"]]
    assert ("open", "INC-000001") in kinds and ("resolve", "INC-000001") in kinds
    assert {n["target"] for n in doc["notifications"]} == {"chatops"}
    with pytest.raises(BlockingIOError):
        listener.accept()
    # ISO 8601 wherever a person reads, the summary included; the live data dir is untouched.
    assert (doc["first_time"], doc["last_time"]) == ("2026-11-30T10:00:00Z", "2026-11-30T18:00:00Z")
    assert doc["data_dir"] is None and not (tmp_path / "live-data").exists()
    assert doc["rule_notifications"] == []  # level-2 `notify` requests: none in these rules


def test_human_output_lists_incidents_problems_changes_and_suppression(setup, capsys) -> None:
    args = ["replay", str(setup["rec"]), "--config", str(setup["config"]), "--changes", str(setup["changes"])]
    assert main([*args, "--wait", "5m"]) == 0
    out = capsys.readouterr().out
    assert "reduction: 11 events in, 5 incidents out (2.2 events per incident)" in out
    assert "incidents: 5 opened, 3 resolved, 1 reopened" in out
    assert "  INC-000002 P2 new: app1 Gi0/1 down (rule link, host app1)" in out
    assert "      suspected cause CHG-000001" in out
    assert "2026-11-30T10:10:30Z reopened r1 link.timeout Gi0/1 major" in out
    assert "  PRB-000001 open opened 2026-11-30T18:00:30Z: recurring: sw2 Gi0/9 down" in out
    assert "suspected cause of INC-000002" in out
    assert "maintenance: 1 events suppressed" in out
    assert "notifications (listed, not sent):" in out
    assert "first_time: 2026-11-30T10:00:00Z" in out and "1796" not in out  # no epoch floats


async def test_data_dir_keeps_the_stores_for_the_daemon_and_api(setup, capsys, tmp_path) -> None:
    data = tmp_path / "kept"
    doc = await _in_thread(replay_json, setup, capsys, "--data", str(data))
    assert doc["data_dir"] == str(data)
    # What a daemon started with storage.data_dir there (and its API) reads: the same incidents.
    config = load_config(None, {"storage": {"data_dir": str(data)}})
    service = IncidentService(
        create_store(None, data), incident_settings(config.incidents), Clock(T0 + 86400)
    )
    await service.open()
    try:
        page = await service.query(IncidentQuery(limit=50))
        assert sorted(i.human_id for i in page.incidents) == [f"INC-00000{n}" for n in range(1, 6)]
        inc, timeline = await service.get(2)
        assert (inc.change_id, inc.status.value) == ("CHG-000001", "new")
        assert [e.action for e in timeline][:2] == ["open", "event"]
    finally:
        await service.close()
    records = create_record_store(None, data)
    await records.open()
    try:
        problems = await records.records("problems")
        assert [doc["signature"] for _, doc in problems]
    finally:
        await records.close()
    # A second replay into the same directory is refused: replay never mixes into existing stores.
    args = ["replay", str(setup["rec"]), "--config", str(setup["config"]), "--data", str(data)]
    assert await _in_thread(main, args) == 2
    assert "already holds incidents.db" in capsys.readouterr().err


def test_events_only_skips_the_itsm_stages(setup, capsys) -> None:
    doc = replay_json(setup, capsys, "--events-only")
    assert doc["events_in"] == 11 and "incidents" not in doc


def test_a_broken_changes_file_is_named_by_line(setup, capsys, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("changes:\n  - title: x\n    start: 2026-11-30T13:00:00Z\n    end: 2026-11-30T12:00:00Z\n"
                   "    cis: [a]\n")  # fmt: skip
    args = ["replay", str(setup["rec"]), "--config", str(setup["config"]), "--changes", str(bad)]
    assert main(args) == 2
    assert f"{bad}:4:5: end: must be after start" in capsys.readouterr().err


async def _in_thread(fn: Any, *args: Any) -> Any:
    """The CLI runs its own event loop: call it from a thread while this test's loop waits."""
    return await asyncio.to_thread(fn, *args)
