"""The Service Review from a store filled by the storm acceptance suite: the storm runs in process
through the daemon's pipeline into a data directory, then the real daemon serves that directory.

Every figure of GET /api/v1/report equals what the API's own lists say for the same period;
`correlator report` offline (reading the stores) gives the same JSON as the API; the HTML has a chart
per section and opens in headless chromium (screenshot kept, printed) when it is installed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator.availability.stage import AvailabilityStage
from correlator.catalogue import load_catalogue
from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.cli import main
from correlator.clock import Clock
from correlator.config import Config, StorageConfig
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
from correlator.store.sqlite import SqliteEventStore
from tests.support.browser import chromium
from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.storm import STORM_END, approve_changes, storm

pytestmark = pytest.mark.integration

T0 = 1_796_032_800.0  # 2026-11-30T10:00:00Z, a Monday
FROM, TO = "2026-11-23T00:00:00Z", "2026-12-06T00:00:00Z"  # two ISO weeks around the storm, past
PERIOD = {"from": FROM, "to": TO}
# core-1 is down 300 s in the storm: access behind it (all_of) is down, the redundant core is not.
SERVICES = """
services:
  core-network:
    target: 0.9999
    any_of: [core-1, core-2]
  campus-access:
    target: 0.999
    all_of: [core-1, dist-1]
  billing:
    target: 0.995
    all_of: [srv-25]
"""
SECTIONS = ("availability", "incidents", "problems", "changes", "noise")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def fill(work: Path) -> Path:
    """The storm through the pipeline into `work/var` (incidents, records, events); one open
    incident is acknowledged afterwards, so MTTA has a figure."""
    data = work / "var"
    data.mkdir(parents=True)
    events, topology, rules, _ = storm(T0)
    rules_dir = work / "storm-rules"
    rules_dir.mkdir()
    (work / "topology.yaml").write_text(topology)
    for name, text in rules.items():
        (rules_dir / name).write_text(text)
    (work / "services.yaml").write_text(SERVICES)
    config = Config(
        rules_dir=rules_dir,
        storage=StorageConfig(data_dir=data),
        availability={"services_file": str(work / "services.yaml")},
    )
    holder = RulesHolder(rules_dir, None, load_catalogue(config))
    holder.load_initial()
    clock = Clock(T0 - 1)
    incidents = IncidentService(SqliteIncidentStore(data / "incidents.db"), parse_settings({}), clock)
    records = SqliteRecordStore(data / "records.db")
    store = SqliteEventStore(data / "events.db")
    async with AsyncExitStack() as stack:
        for s in (incidents, records, store):
            await s.open()
            stack.push_async_callback(s.close)
        changes = ChangeService(records, ChangeSettings(), clock, _no_emit, incidents)
        await changes.open()
        problems = ProblemService(records, ProblemSettings(), clock, incidents)
        await problems.open()
        await approve_changes(changes, T0)
        pipeline = build_pipeline(config, holder, incidents, changes, problems)
        availability = pipeline.find("availability")
        assert isinstance(availability, AvailabilityStage)
        await availability.open(clock)  # live mode: outages go to availability.db
        stack.push_async_callback(availability.close)
        stepper = Stepper(pipeline, T0 - 1)
        stepper.clock = clock
        for doc in events:
            await store.write(await stepper.feed(event_from_dict(doc, "webhook:generic", epoch(doc["time"]))))
        await store.write(await stepper.advance(T0 + STORM_END))
        page = await incidents.query(IncidentQuery())
        first_open = min((i for i in page.incidents if i.active), key=lambda i: i.id)
        clock.advance_to(T0 + STORM_END + 600)
        await incidents.act(first_open.id, "ack", "noc", {})
    return data


async def _no_emit(events: Any, source: str) -> None:
    """Change lifecycle events are not part of the storm."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Path]]:
    import asyncio

    work = tmp_path_factory.mktemp("report")
    data = asyncio.run(fill(work))
    port = free_port()
    config = base_config(
        work,
        port,
        storage={"data_dir": str(data)},
        availability={"services_file": str(work / "services.yaml")},
    )
    d = DaemonProcess(work, config, port)
    d.start()
    yield d, data
    d.stop()


def offline_args(d: DaemonProcess, data: Path) -> list[str]:
    """The daemon's own configuration (its services file) and data directory."""
    return ["--config", str(d.workdir / "correlator.yaml"), "--data", str(data)]


def api_report(d: DaemonProcess, query: str = f"from={FROM}&to={TO}") -> dict[str, Any]:
    status, doc = d.get(f"/api/v1/report?{query}")
    assert status == 200, doc
    return doc


def all_incidents(d: DaemonProcess, extra: str = "") -> list[dict[str, Any]]:
    status, doc = d.get(f"/api/v1/incidents?since={FROM}&limit=500{extra}")
    assert status == 200 and doc["next_cursor"] is None, doc
    return [i for i in doc["incidents"] if i["opened_at"] < TO]


def test_every_incident_figure_equals_what_the_incidents_api_says(served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    report = api_report(d)
    rows = all_incidents(d)
    inc = report["incidents"]
    assert inc["total"] == len(rows) == 8
    for p, n in inc["by_priority"].items():
        assert n == len(all_incidents(d, f"&priority={p}")), p
    assert sum(w["total"] for w in inc["by_week"]) == len(rows)
    assert [w["week"] for w in inc["by_week"]] == ["2026-W48", "2026-W49"]
    assert inc["by_status"] == dict(sorted(Counter(i["status"] for i in rows).items()))
    assert inc["major"] == len(all_incidents(d, "&major=true"))
    acked = [i for i in rows if i["acknowledged_at"]]
    assert inc["acknowledged"] == len(acked) >= 1
    mtta = sum(epoch(i["acknowledged_at"]) - epoch(i["opened_at"]) for i in acked) / len(acked)
    assert inc["mtta_seconds"] == pytest.approx(mtta)
    resolved = [i for i in rows if i["resolved_at"]]
    mttr = sum(epoch(i["resolved_at"]) - epoch(i["opened_at"]) for i in resolved) / len(resolved)
    assert inc["resolved"] == len(resolved) and inc["mttr_seconds"] == pytest.approx(mttr)
    assert inc["reopened"] == sum(1 for i in rows if i["reopen_count"] > 0) == 1
    assert inc["escalated"] == sum(1 for i in rows if i["escalation_level"] > 0)


def test_problems_changes_and_noise_equal_what_their_apis_say(served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    report = api_report(d)
    rows = all_incidents(d)
    _, problems = d.get("/api/v1/problems")
    [problem] = problems["problems"]
    [row] = report["recurring"]["problems"]
    assert row["id"] == problem["id"] and row["title"] == problem["title"]
    assert row["incidents"] == sum(1 for i in rows if i["problem_id"] == problem["id"])
    assert report["recurring"]["problems_opened"] == 1
    _, trend = d.get(f"/api/v1/problems/trend?since={FROM}&limit=100")
    counts = {tuple(t["signature"].values()): t["count"] for t in trend["signatures"]}
    sigs = report["recurring"]["signatures"]
    assert len(sigs) == min(10, len(counts)) and sigs[0]["count"] == max(counts.values()) >= 3
    for sig in sigs:
        assert counts[sig["key"], sig["rule"], sig["host"]] == sig["count"], sig
    _, changes = d.get("/api/v1/changes")
    [change] = changes["changes"]
    ch = report["changes"]
    assert ch["total"] == 1 and ch["by_outcome"] == {change["state"]: 1}
    assert ch["caused_incidents"] == len(change["incidents"]) == sum(1 for i in rows if i["change_id"]) == 1
    assert ch["list"][0]["id"] == change["id"] and ch["list"][0]["incidents"] == 1
    noise = report["noise"]
    for ci in noise["cis"][:3]:
        status, ev = d.get(f"/api/v1/events?host={ci['ci']}&since={FROM}&until={TO}&limit=1000")
        assert status == 200 and ev["next_cursor"] is None
        assert ci["events"] == sum(e.get("count", 1) for e in ev["events"]), ci
        assert ci["incidents"] == sum(1 for i in rows if i["host"] == ci["ci"])
    by_rule = Counter(i["rule"] for i in rows if i["rule"])
    assert {r["rule"]: r["incidents"] for r in noise["rules"]} == dict(by_rule)


def test_availability_per_service_against_its_target(served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    rows = {s["service"]: s for s in api_report(d)["availability"]["services"]}
    assert set(rows) == {"core-network", "campus-access", "billing"}
    redundant, behind, billing = rows["core-network"], rows["campus-access"], rows["billing"]
    assert redundant["outages"] == billing["outages"] == 0 and redundant["availability"] == 1.0
    assert redundant["met"] is True and redundant["mtrs_seconds"] is None
    # campus-access was down while core-1 or dist-1's uplink was: 300 s of storm time, plus the
    # uplink's 2 s before core-1 and its late recovery 15 s after; tracked from the storm's start.
    assert behind["outages"] == 1 and len(behind["outage_list"]) == 1
    down = behind["downtime_seconds"]
    assert down == behind["outage_list"][0]["seconds"] == behind["mtrs_seconds"] == pytest.approx(317, abs=2)
    observed = epoch(TO) - (T0 - 1)
    assert behind["availability"] == pytest.approx(1 - down / observed)
    assert behind["mtbf_seconds"] == pytest.approx(observed - down)
    assert behind["met"] is (behind["availability"] >= 0.999)


def test_the_command_offline_gives_the_api_figures_and_writes_the_html(
    served: tuple[DaemonProcess, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d, data = served
    assert main(["report", *offline_args(d, data), "--from", FROM, "--to", TO, "--json"]) == 0
    offline = orjson.loads(capsys.readouterr().out)
    online = api_report(d)
    for doc in (offline, online):
        doc["period"].pop("generated_at")
    assert offline == online
    out = tmp_path / "review.html"
    assert main(["report", "--url", d.url, "--from", FROM, "--to", TO, "-o", str(out)]) == 0
    page = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("<svg") == 7  # availability, incidents, MTTA/MTTR, recurring, changes, CIs, rules
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_bad_periods_are_a_400_in_the_error_format_and_counted(served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    before = d.metric("correlator_reports_total", {"outcome": "invalid"})
    for query, field in (
        ("from=yesterday", "from"),
        (f"from={TO}&to={FROM}", "from"),
        ("period=-1d", "period"),
        ("period=900d", "period"),
        (f"from={FROM}&to={TO}&period=7d", "period"),
        ("since=2026-01-01", "since"),
    ):
        status, doc = d.get(f"/api/v1/report?{query}")
        assert status == 400 and doc["field"] == field and doc["error"], (query, doc)
    assert d.metric("correlator_reports_total", {"outcome": "invalid"}) == before + 6
    assert main(["report", "--url", d.url, "--period", "nonsense"]) == 1  # the daemon's 400


def test_the_command_refuses_a_bad_period_and_a_directory_without_stores(
    served: tuple[DaemonProcess, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d, data = served
    assert main(["report", *offline_args(d, data), "--from", TO, "--to", FROM]) == 2
    assert capsys.readouterr().err == "correlator report: --from: must be before to\n"
    assert main(["report", "--data", str(tmp_path), "--period", "7d"]) == 1
    assert "no incidents.db here" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing created there


def test_the_html_opens_in_chromium_with_every_chart(
    served: tuple[DaemonProcess, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    d, data = served
    shots = tmp_path_factory.mktemp("report-screenshots")
    page = shots / "report.html"
    assert main(["report", *offline_args(d, data), "--from", FROM, "--to", TO, "-o", str(page)]) == 0
    with chromium(tmp_path_factory.mktemp("chromium-profile"), size="1100,3000") as browser:
        from selenium.webdriver.common.by import By

        browser.get(page.as_uri())
        assert browser.title.startswith("Service Review")
        for section in SECTIONS:
            charts = browser.find_elements(By.CSS_SELECTOR, f"section#{section} svg.chart")
            assert charts and all(c.size["width"] > 100 and c.size["height"] > 20 for c in charts), section
        browser.save_screenshot(str(shots / "report.png"))
    print(f"report screenshot in {shots}")


def test_annotations_are_the_periods_incidents_and_changes_in_grafanas_shape(
    served: tuple[DaemonProcess, Path],
) -> None:
    d, _ = served
    grafana = "from=2026-11-23T00:00:00.000Z&to=2026-12-06T00:00:00.000Z"  # ${__from:date:iso}
    status, rows = d.get(f"/api/v1/annotations?{grafana}")
    assert status == 200, rows
    incidents = {i["id"]: i for i in all_incidents(d)}
    _, changes = d.get("/api/v1/changes")
    assert [r["id"] for r in rows if r["kind"] == "incident"] == sorted(incidents)  # opened in order
    assert [r["id"] for r in rows if r["kind"] == "change"] == [c["id"] for c in changes["changes"]]
    assert [epoch(r["time"]) for r in rows] == sorted(epoch(r["time"]) for r in rows)
    for r in rows:
        assert set(r) == {"time", "timeEnd", "title", "text", "tags", "kind", "id"}
        assert r["time"].endswith("Z") and r["title"].startswith(r["id"])
        if r["kind"] == "incident":
            i = incidents[r["id"]]
            assert (r["time"], r["timeEnd"]) == (i["opened_at"], i["resolved_at"])
            assert r["tags"].split(",")[:3] == ["incident", i["priority"], i["host"]]
        else:
            assert r["tags"].startswith("change,approved") and "srv-25" in r["text"]
    status, only = d.get(f"/api/v1/annotations?{grafana}&kind=incidents&priority=P4")
    assert status == 200 and [r["id"] for r in only] == sorted(
        k for k, i in incidents.items() if i["priority"] == "P4"
    )
    status, none = d.get("/api/v1/annotations?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z")
    assert status == 200 and none == []
    for query, field in (("kind=alerts", "kind"), ("priority=P9", "priority"), ("from=soon", "from")):
        status, doc = d.get(f"/api/v1/annotations?{query}")
        assert status == 400 and doc["field"] == field, (query, doc)
