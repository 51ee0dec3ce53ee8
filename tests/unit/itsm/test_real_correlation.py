"""With the real rule engine instead of the stand-in: a level-2 rule file asks for incidents, and a
change window keeps the suppressed events away from it while they are still stored."""

from __future__ import annotations

from pathlib import Path

from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.config import Config
from correlator.event import Event
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.incidents.store import IncidentQuery
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.sqlite import SqliteRecordStore
from tests.unit.itsm.conftest import HOUR, MIN, T0, event

RULES = """
rules:
  - name: link-down
    kind: threshold
    match: {type: linkDown}
    group_by: [host]
    count: 1
    within: 1m
    on_fire:
      - incident: {action: open, title: "{host} down"}
"""


async def test_suppressed_events_never_reach_level_2_rules_but_are_stored(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "net.yaml").write_text(RULES)
    clock = Clock(T0)
    incidents = IncidentService(SqliteIncidentStore(tmp_path / "i.db"), parse_settings({}), clock)
    await incidents.open()
    records = SqliteRecordStore(tmp_path / "r.db")
    await records.open()
    changes = ChangeService(records, ChangeSettings(), clock, None, incidents)
    await changes.open()
    problems = ProblemService(
        records, ProblemSettings(recurrence_count=2, recurrence_window=HOUR), clock, incidents
    )
    await problems.open()
    try:
        pipeline = build_pipeline(Config(rules_dir=rules), None, incidents, changes, problems)
        c = await changes.create("a", {"title": "t", "start": T0, "end": T0 + HOUR, "cis": ["core-sw1"]})
        await changes.act(c.id, "approve", "a")

        async def feed(*events: Event) -> list[Event]:
            return await pipeline.run(list(events), StageContext(clock, live=False))

        inside, other = event(T0 + MIN), event(T0 + MIN, host="edge-1")
        out = await feed(inside, other)
        assert {e.id for e in out} == {inside.id, other.id}
        assert inside.attributes["maintenance"] == "suppress"
        page = await incidents.query(IncidentQuery())
        assert [i.host for i in page.incidents] == ["edge-1"]
        assert page.incidents[0].key == "link-down:edge-1"
        await feed(event(T0 + 2 * HOUR))  # after the window: the rule sees it
        page = await incidents.query(IncidentQuery())
        assert sorted(i.host for i in page.incidents) == ["core-sw1", "edge-1"]
        # The change began on core-sw1 and the incident came 1h after its window: a suspect (2h window).
        core = next(i for i in page.incidents if i.host == "core-sw1")
        assert core.change_id == c.human_id
    finally:
        await incidents.close()
        await records.close()
