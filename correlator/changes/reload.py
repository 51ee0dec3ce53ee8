"""Reloads of the maintenance calendar file, a target of correlator/reloads.py (file change, SIGHUP,
POST /api/v1/rules/reload) like the rules.

The file is parsed off the event loop. A valid calendar goes to the change service, which withdraws
the not-yet-started occurrences it no longer backs; a broken one is logged with its file:line and
counted, and the last good calendar keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.metrics import Counter, Gauge

from correlator.changes.calendar import Calendar, CalendarError, load_calendar
from correlator.changes.service import ChangeService
from correlator.changes.topology import DependencyMap, load_dependencies
from correlator.errors import ConfigError
from correlator.event import iso
from correlator.yamlfile import Position, empty_file

log = logging.getLogger(__name__)

FAILURES = Counter(
    "correlator_calendar_reload_failures_total",
    "Calendar reloads that failed; the previous calendar keeps serving",
)
FAILED = Gauge(
    "correlator_calendar_reload_failed",
    "1 while the last calendar reload failed and the previous calendar serves; else 0",
)


@dataclass
class CalendarReload:
    ok: bool
    trigger: str
    at: float
    file: str
    windows: int  # in the calendar serving after the attempt
    withdrawn: list[str] = field(default_factory=list)  # change ids
    errors: list[CalendarError] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**doc, "at": iso(self.at), "errors": [e.as_dict() for e in self.errors]}


class CalendarReloader:
    """Feeds `changes.calendar` to the change service again whenever it is reloaded."""

    name = "calendar"

    def __init__(
        self, service: ChangeService, calendar_file: Path, topology_file: Path | None = None
    ) -> None:
        self.service = service
        self.calendar_file = calendar_file
        self.topology_file = topology_file
        self.last: CalendarReload | None = None
        self._lock = asyncio.Lock()
        FAILED.set(0)  # the daemon started, so the calendar loaded

    def watched(self) -> list[Path]:
        # The topology file too: the dependency map is read from it at each reload.
        return [self.calendar_file] + ([self.topology_file] if self.topology_file is not None else [])

    def owns(self, path: Path) -> bool:
        return any(path == f.resolve() for f in self.watched())

    async def reload(self, trigger: str) -> CalendarReload:
        async with self._lock:
            file = str(self.calendar_file)
            try:
                calendar, deps = await asyncio.to_thread(self._load)
            except CalendarError as e:
                return self._failed(trigger, e)
            reason = f"calendar reload ({trigger})"
            withdrawn = await self.service.use_calendar(calendar, deps, reason)
            FAILED.set(0)
            log.info(
                "%s: %d windows from %s; %d not-yet-started occurrences withdrawn",
                reason, len(calendar.windows), file, len(withdrawn),
            )  # fmt: skip
            ids = [c.human_id for c in withdrawn]
            self.last = CalendarReload(
                True, trigger, self.service.clock.now(), file, len(calendar.windows), ids
            )
            return self.last

    def _load(self) -> tuple[Calendar, DependencyMap]:
        if empty_file(self.calendar_file):
            # Read between an editor's truncate and its write, it would withdraw every future
            # occurrence; clearing the calendar on purpose is `windows: []`.
            raise CalendarError(
                str(self.calendar_file),
                "the calendar file is empty, taken as being written; to remove every window write"
                " 'windows: []'",
                Position(str(self.calendar_file), 1, 1),
            )
        calendar = load_calendar(self.calendar_file)
        try:
            return calendar, load_dependencies(calendar.dependencies, self.topology_file)
        except ConfigError as e:  # the topology file, read again for the dependency map
            raise CalendarError(str(self.topology_file), str(e)) from None

    def _failed(self, trigger: str, error: CalendarError) -> CalendarReload:
        serving = len(self.service.settings.calendar.windows)
        log.error("calendar reload (%s): %s", trigger, error)
        log.error("calendar reload (%s): keeping the previous calendar of %d windows", trigger, serving)
        FAILURES.inc()
        FAILED.set(1)
        file = str(self.calendar_file)
        self.last = CalendarReload(False, trigger, self.service.clock.now(), file, serving, errors=[error])
        return self.last
