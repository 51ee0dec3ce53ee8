"""A whole ITSM world on a virtual clock: incidents, changes and problems on SQLite and PostgreSQL.

`world.feed(t, *events)` runs one pipeline batch at time t through the real build_pipeline, with a
stand-in correlation stage after maintenance (each non-clear event asks to open an incident keyed
host/type, each clear to resolve it), so suppression, linkage and recurrence are seen end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from correlator.changes.calendar import parse_calendar
from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.config import Config
from correlator.event import Event, Severity
from correlator.incidents.pg_store import PgIncidentStore
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.pipeline import Pipeline, StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.postgres import PgRecordStore
from correlator.records.sqlite import SqliteRecordStore
from correlator.records.store import RecordStore
from correlator.responses import IncidentRequest
from correlator.yamlfile import loads
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday
MIN = 60.0
HOUR = 3600.0


def event(
    t: float, host: str = "core-sw1", severity: Severity = Severity.MAJOR, type_: str = "linkDown", **kw: Any
) -> Event:
    return Event(
        id=kw.pop("id", f"ev-{t}-{host}-{type_}-{severity}"), time=t, received=t, source=kw.pop("source", "test"),
        host=host, type=type_, severity=severity, **kw,
    )  # fmt: skip


class StandInCorrelation:
    """What level-2 correlation would do for these tests: one incident per host/type."""

    name = "correlate"

    def __init__(self) -> None:
        self.seen: list[Event] = []

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        for ev in events:
            self.seen.append(ev)
            action = "resolve" if ev.severity is Severity.CLEAR else "open"
            title = f"{ev.type} on {ev.host}"
            ctx.responses.append(IncidentRequest(action, f"{ev.host}/{ev.type}", ev, "stand-in", title=title))  # type: ignore[arg-type]
        return events


@dataclass
class World:
    clock: Clock
    incidents: IncidentService
    changes: ChangeService
    problems: ProblemService
    records: RecordStore
    pipeline: Pipeline
    correlation: StandInCorrelation
    emitted: list[Event] = field(default_factory=list)
    stored: list[Event] = field(default_factory=list)

    async def feed(self, t: float, *events: Event) -> list[Event]:
        """One live batch at time t; returns what the pipeline hands to the event store."""
        self.clock.advance_to(t)
        ctx = StageContext(self.clock, live=True)
        out = await self.pipeline.run(list(events), ctx)
        if ctx.pending is not None:  # as the runner does before the ack
            await ctx.pending
        self.stored.extend(out)
        return out


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], tuple[Any, RecordStore]]:
    """() -> (incident store, record store), new objects on the same databases (call twice: restart)."""
    if request.param == "sqlite":
        return lambda: (
            SqliteIncidentStore(tmp_path / "incidents.db"),
            SqliteRecordStore(tmp_path / "records.db"),
        )
    dsn = request.getfixturevalue("pg_dsn")
    await reset_pg(dsn)
    return lambda: (PgIncidentStore(dsn), PgRecordStore(dsn))


@pytest.fixture
async def make_world(backend, tmp_path):
    """make_world(calendar_yaml=None, changes={}, problems={}) -> an opened World; closed after the test."""
    opened: list[World] = []
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()

    async def factory(calendar: str | None = None, clock: Clock | None = None, **kw: Any) -> World:
        clock = clock or Clock(T0)
        inc_store, records = backend()
        incidents = IncidentService(inc_store, parse_settings({}), clock)
        await incidents.open()
        await records.open()
        cal = parse_calendar(loads(calendar, "calendar.yaml"), "calendar.yaml") if calendar else None
        extra = {"calendar": cal, "dependencies": cal.dependencies} if cal else {}
        csettings = ChangeSettings(**kw.get("changes", {}), **extra)
        world_emitted: list[Event] = []

        async def emit(events: list[Event], source: str) -> None:
            world_emitted.extend(events)

        changes = ChangeService(records, csettings, clock, emit, incidents)
        await changes.open()
        problems = ProblemService(records, ProblemSettings(**kw.get("problems", {})), clock, incidents)
        await problems.open()
        config = Config(rules_dir=rules_dir)  # no rules: the stand-in below is the only correlation
        pipeline = build_pipeline(config, None, incidents, changes, problems)
        correlation = StandInCorrelation()
        names = [s.name for s in pipeline.stages]
        pipeline.stages.insert(names.index("maintenance") + 1, correlation)
        w = World(clock, incidents, changes, problems, records, pipeline, correlation, world_emitted)
        opened.append(w)
        return w

    yield factory
    for w in opened:
        await w.incidents.close()
        await w.records.close()
