"""The ITSM services (incidents, changes, problems) and the pipeline that feeds them, assembled once.

The daemon and replay (and `rules explain` / `rules test`) call `assemble`, so what replay shows is
what the daemon would do: same stages, same order, same services. The caller chooses what differs
between them: the clock (wall time or event time), the stores (the configured ones or a throwaway
SQLite directory), how notifications leave (the outbox, or a list) and where change events go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from correlator.changes import settings as change_settings
from correlator.changes.service import ChangeService, Emit, Full
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.config import Config
from correlator.incidents import IncidentService
from correlator.incidents import parse_settings as incident_settings
from correlator.incidents.backend import create_store
from correlator.incidents.settings import NotifyTarget
from correlator.notify.incidents import Notifier
from correlator.pipeline import Pipeline
from correlator.pipeline.assemble import build_pipeline
from correlator.problems import settings as problem_settings
from correlator.problems.service import ProblemService
from correlator.records.backend import create_record_store
from correlator.rules.reload import RulesHolder


@dataclass
class Services:
    incidents: IncidentService
    changes: ChangeService
    problems: ProblemService
    change_settings: ChangeSettings
    pipeline: Pipeline


def assemble(
    config: Config,
    rules: RulesHolder,
    clock: Clock,
    data_dir: Path,
    notifier: Callable[[dict[str, NotifyTarget]], Notifier],
    emit: Emit | None = None,
    configured_stores: bool = True,
    full: Full | None = None,
) -> Services:
    """Build (not open) the services on `clock` and the pipeline around them. `notifier` makes the
    incident notifier from the configured targets; change events go to `emit`, `full` tells
    beforehand whether it would refuse them. Stores: the configured PostgreSQL ones if any
    and `configured_stores`, else SQLite files in `data_dir`. Raises ConfigError on bad settings."""
    settings = incident_settings(config.incidents)
    dsn = config.storage.dsn if configured_stores else None
    incident_dsn = (settings.dsn or dsn) if configured_stores else None
    incidents = IncidentService(
        create_store(incident_dsn, data_dir), settings, clock, notifier(settings.notify)
    )
    csettings = change_settings.parse_settings(config.changes)
    records = create_record_store((csettings.dsn or dsn) if configured_stores else None, data_dir)
    changes = ChangeService(records, csettings, clock, emit, incidents, full)
    problems = ProblemService(records, problem_settings.parse_settings(config.problems), clock, incidents)
    pipeline = build_pipeline(config, rules, incidents, changes, problems)
    return Services(incidents, changes, problems, csettings, pipeline)


async def open_services(s: Services) -> None:
    """Open the stores and load what they hold: incidents, then the record store, changes, problems."""
    await s.incidents.open()
    try:
        await s.changes.store.open()
        try:
            await s.changes.open()
            await s.problems.open()
        except BaseException:
            await s.changes.store.close()
            raise
    except BaseException:
        await s.incidents.close()
        raise


async def close_services(s: Services) -> None:
    await s.incidents.close()
    await s.changes.store.close()
