"""The storm acceptance suite: a generated 3-level storm (tests/support/storm.py) must give exactly
the expected incident table, in process on the event-time clock, through `correlator replay` and
through the live daemon.

In process, the storm runs through the daemon's own pipeline (build_pipeline with incidents,
changes and problems on SQLite) on a virtual clock, one event at a time. Live, the same storm is
posted at its own pace with its timeline scaled down to a minute (the daemon's clock is wall time),
each event stamped with its own time.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.cli import main
from correlator.clock import Clock
from correlator.config import Config
from correlator.event import event_from_dict
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.incidents.store import IncidentQuery
from correlator.pipeline.assemble import build_pipeline
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.sqlite import SqliteRecordStore
from correlator.replay import Stepper
from correlator.rules.reload import RulesHolder
from tests.support.storm import STORM_END, Expected, approve_changes, storm, storm_changes, write_files

pytestmark = pytest.mark.integration

T0 = 1_796_032_800.0  # 2026-11-30T10:00:00Z
LIVE_SCALE = 0.05  # 20 storm minutes in one wall minute


def write_storm(root: Path, topology: str, rules: dict[str, str]) -> Path:
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (root / "topology.yaml").write_text(topology)
    for name, text in rules.items():
        (rules_dir / name).write_text(text)
    return rules_dir


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def table(rows: list[dict[str, Any]]) -> list[Expected]:
    """The incident table in the form of the expected one (min_events from the expected row)."""
    return sorted(
        (
            Expected(
                r["key"],
                r["status"],
                r["reopen_count"],
                r["change_id"] is not None,
                r["problem_id"] is not None,
            )
            for r in rows
        ),
        key=lambda e: e.key,
    )


def check(rows: list[dict[str, Any]], expected: list[Expected]) -> None:
    assert table(rows) == [Expected(e.key, e.status, e.reopen_count, e.change, e.problem) for e in expected]
    counts = {r["key"]: r["event_count"] for r in rows}
    for e in expected:
        assert counts[e.key] >= e.min_events, f"{e.key}: {counts[e.key]} events, expected {e.min_events}+"


def test_the_storm_is_several_thousand_events_on_three_levels() -> None:
    events, topology, rules, expected = storm(T0)
    assert len(events) > 4000
    assert "core-1" in topology and "parent_port" in topology
    assert set(rules) == {"00-storm-noise.yaml", "50-storm-correlation.yaml"}
    assert len(expected) == 8
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert storm(T0)[0] == events, "deterministic"


async def test_the_storm_in_process_gives_exactly_the_expected_incidents(tmp_path: Path) -> None:
    events, topology, rules, expected = storm(T0)
    rules_dir = write_storm(tmp_path, topology, rules)
    holder = RulesHolder(rules_dir)
    holder.load_initial()
    config = Config(rules_dir=rules_dir)
    pipeline_clock_start = T0 - 1
    clock = Clock(pipeline_clock_start)
    incidents = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), parse_settings({}), clock)
    records = SqliteRecordStore(tmp_path / "records.db")
    await incidents.open()
    await records.open()
    try:
        changes = ChangeService(records, ChangeSettings(), clock, _no_emit, incidents)
        await changes.open()
        problems = ProblemService(records, ProblemSettings(), clock, incidents)
        await problems.open()
        await approve_changes(changes, T0)
        stepper = Stepper(build_pipeline(config, holder, incidents, changes, problems), pipeline_clock_start)
        stepper.clock = clock
        stored = 0
        for doc in events:
            ev = event_from_dict(doc, "webhook:generic", epoch(doc["time"]))
            stored += len(await stepper.feed(ev))
        stored += len(await stepper.advance(T0 + STORM_END))
        page = await incidents.query(IncidentQuery(limit=1000))
        check([i.to_api() for i in page.incidents], expected)
        [p] = await problems.query_problems((), 10, None)
        assert p.title.startswith("recurring: srv-20 disk sda failing")
        assert stored < len(events), "the noise was dropped"
    finally:
        await incidents.close()
        await records.close()


def test_the_storm_through_replay_gives_the_same_incidents(tmp_path: Path, capsys: Any) -> None:
    """`correlator replay` of the recorded storm, with the change from a --changes file, shows the
    incident table the in-process and live runs reach, and the reduction the README quotes."""
    events, _, _, expected = storm(T0)
    recording, rules_dir, changes, wait = write_files(tmp_path, T0)
    args = [str(recording), "--rules", str(rules_dir), "--changes", str(changes), "--json"]
    assert main(["replay", *args, "--wait", f"{wait:.0f}s"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    check(doc["incidents"], expected)
    assert doc["reduction"] == {
        "events_in": len(events),
        "incidents": len(expected),
        "ratio": round(len(events) / len(expected), 1),
    }
    [problem] = doc["problems"]
    assert problem["title"].startswith("recurring: srv-20 disk sda failing")
    [change] = doc["changes"]
    assert change["suppressed"] >= 1


async def _no_emit(events: Any, source: str) -> None:
    """Change lifecycle events are not part of the storm (its change is only approved)."""


def test_the_storm_through_the_live_daemon_gives_exactly_the_expected_incidents(
    make_daemon: Any, tmp_path: Path
) -> None:
    start = time.time() + 3.0  # time to create the change before the first event is due
    events, topology, rules, expected = storm(start, LIVE_SCALE)
    rules_dir = write_storm(tmp_path / "storm", topology, rules)
    d = make_daemon(rules_dir=str(rules_dir))
    for body in storm_changes(start, LIVE_SCALE):
        status, doc = d.post_json("/api/v1/changes", body)
        assert status == 201, doc
        status, doc = d.post_json(f"/api/v1/changes/{doc['change']['id']}/approve", {})
        assert status == 200, doc
    post_at_own_pace(d, events)
    wait_for_table(d, expected, 5.0)
    status, doc = d.get("/api/v1/problems")
    assert status == 200 and len(doc["problems"]) == 1, doc


def wait_for_table(d: Any, expected: list[Expected], timeout: float) -> None:
    """Incidents never vanish and the ones expected are all settled by the storm's end, so the first
    time the table matches it is the answer (heartbeats stop with the storm: waiting much longer
    would see them missed)."""
    rows: list[dict[str, Any]] = []

    def matches() -> bool:
        nonlocal rows
        rows = incidents(d)
        try:
            check(rows, expected)
        except AssertionError:
            return False
        return True

    try:
        d.wait_for(matches, timeout=timeout, what="the expected incident table")
    except AssertionError:
        check(rows, expected)  # the diff
        raise


def post_at_own_pace(d: Any, events: list[dict[str, Any]]) -> None:
    """Post each event when its time comes (what is due together goes in one request), then wait until
    the storm's end has passed."""
    due = [epoch(e["time"]) for e in events]
    i = 0
    while i < len(events):
        now = time.time()
        if due[i] > now:
            time.sleep(min(due[i] - now, 0.05))
            continue
        j = i
        while j < len(events) and due[j] <= now:
            j += 1
        status, doc = d.post_json("/api/v1/events", events[i:j])
        assert status == 202, doc
        i = j
    end = due[-1]
    while time.time() < end + 0.5:
        time.sleep(0.05)


def incidents(d: Any) -> list[dict[str, Any]]:
    status, doc = d.get(
        "/api/v1/incidents?limit=200&status=new,acknowledged,in_progress,on_hold,resolved,closed"
    )
    assert status == 200, doc
    return list(doc["incidents"])
