"""Reloads of the services file (the service catalogue), a target of correlator/reloads.py (file
change, SIGHUP, POST /api/v1/rules/reload) like the rules and the calendar.

A valid file is swapped into the one CatalogueHolder (topology impact reads it per event) and into
the availability stage; then the rules reload, since only they recompute the warnings of the
inventory and topology files against the catalogue. A broken file is logged with its file:line and
counted, and the last good catalogue keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.metrics import Counter, Gauge

from correlator.availability.settings import AvailabilitySettings
from correlator.availability.stage import AvailabilityStage, check_maintenance
from correlator.catalogue import Catalogue, CatalogueHolder, catalogue_file
from correlator.clock import Clock
from correlator.errors import ConfigError, FileError
from correlator.event import iso
from correlator.rules.reload import RulesHolder
from correlator.yamlfile import Position, empty_file

log = logging.getLogger(__name__)

FAILURES = Counter(
    "correlator_services_reload_failures_total",
    "Services file reloads that failed; the previous service catalogue keeps serving",
)
FAILED = Gauge(
    "correlator_services_reload_failed",
    "1 while the last services file reload failed and the previous catalogue serves; else 0",
)
_PLACE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$", re.DOTALL)


class ServicesError(FileError):
    """One problem found reloading the services file, shaped like a rule error in the reload answers."""

    @classmethod
    def of(cls, file: str, error: ConfigError) -> ServicesError:
        """The services parser says `file:line:column: message`; the place is split out when there."""
        m = _PLACE.match(str(error))
        if m is None:
            return cls(file, str(error))
        where = Position(m["file"], int(m["line"]), int(m["column"]))
        return cls(where.file, m["message"], where)


@dataclass
class ServicesReload:
    ok: bool
    trigger: str
    at: float
    file: str
    services: int  # in the catalogue serving after the attempt
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[ServicesError] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**doc, "at": iso(self.at), "errors": [e.as_dict() for e in self.errors]}


class ServicesReloader:
    """Swaps a valid services file into the catalogue holder and the availability stage."""

    name = "services"

    def __init__(
        self,
        holder: CatalogueHolder,
        settings: AvailabilitySettings,
        availability: AvailabilityStage | None,
        rules: RulesHolder,
        clock: Clock,
    ) -> None:
        if settings.services_file is None:
            raise ValueError("no availability.services_file to reload")
        self.holder = holder
        self.settings = settings
        self.file = settings.services_file
        self.availability = availability
        self.rules = rules
        self.clock = clock
        self.last: ServicesReload | None = None
        self._lock = asyncio.Lock()
        FAILED.set(0)  # the daemon started, so the file loaded

    def watched(self) -> list[Path]:
        return [self.file]

    def owns(self, path: Path) -> bool:
        return path == self.file.resolve()

    async def reload(self, trigger: str) -> ServicesReload:
        async with self._lock:
            try:
                new = await asyncio.to_thread(self._load)
            except ConfigError as e:
                return self._failed(trigger, ServicesError.of(str(self.file), e))
            old = self.holder.current
            self.holder.current = new
            if self.availability is not None:
                await self.availability.use(new.model, self.clock.now())
            FAILED.set(0)
            added = sorted(new.members.keys() - old.members.keys())
            removed = sorted(old.members.keys() - new.members.keys())
            log.info(
                "services reload (%s): %d services from %s; added %s, removed %s",
                trigger, len(new.members), self.file, added or "none", removed or "none",
            )  # fmt: skip
            self.last = ServicesReload(
                True, trigger, self.clock.now(), str(self.file), len(new.members), added, removed
            )
            if new.model != old.model:  # the warnings against the catalogue are the rules' to give
                await self.rules.reload(f"services reload ({trigger})")
            return self.last

    def _load(self) -> Catalogue:
        if empty_file(self.file):
            # Read between an editor's truncate and its write, it would drop every service and its
            # state; emptying the catalogue on purpose is `services: {}`.
            raise ConfigError(
                f"{self.file}:1:1: the services file is empty, taken as being written; to remove"
                " every service write 'services: {}'"
            )
        catalogue = catalogue_file(self.file)
        check_maintenance(self.settings, catalogue.model)
        return catalogue

    def _failed(self, trigger: str, error: ServicesError) -> ServicesReload:
        serving = len(self.holder.current.members)
        log.error("services reload (%s): %s", trigger, error)
        log.error("services reload (%s): keeping the previous catalogue of %d services", trigger, serving)
        FAILURES.inc()
        FAILED.set(1)
        self.last = ServicesReload(False, trigger, self.clock.now(), str(self.file), serving, errors=[error])
        return self.last
