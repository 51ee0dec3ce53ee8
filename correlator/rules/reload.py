"""The live rule set and its reloads (file change, SIGHUP, POST /api/v1/rules/reload).

A reload reads the whole directory off the event loop and compiles the files that changed since the
last load (rules/cache.py), then swaps one reference: stages read `holder.current` once per batch,
so no event sees a half-loaded set. On error the old set stays.
The holder is one target of correlator/reloads.py, which watches its files and runs its reloads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.metrics import Counter, Gauge

from correlator.event import iso
from correlator.rules.cache import CompileCache
from correlator.rules.errors import RuleError, RuleErrors
from correlator.rules.loader import load_rules
from correlator.rules.ruleset import RuleSet
from correlator.rules.stats import STATS

if TYPE_CHECKING:
    from correlator.catalogue import CatalogueHolder

log = logging.getLogger(__name__)

RELOAD_SUCCESS = Gauge(
    "correlator_rules_reload_success",
    "1 if the last rules reload succeeded; 0 if it failed and the old set serves",
)
RELOADS = Counter("correlator_rules_reloads_total", "Rule reload attempts by result", ["result"])
RULES_LOADED = Gauge("correlator_rules_loaded", "Rules in the active rule set")
LAST_SUCCESS = Gauge(
    "correlator_rules_last_reload_success_timestamp_seconds", "Time of the last successful rules load"
)
WATCHED_SUFFIXES = (".yaml", ".yml", ".csv")
LOGGED_WARNINGS = 50  # per load; `correlator rules check` prints them all


@dataclass
class ReloadResult:
    ok: bool
    trigger: str
    at: float
    rules: int
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "trigger": self.trigger,
            "at": iso(self.at),
            "rules": self.rules,
            "errors": [e.as_dict() for e in self.errors],
            "warnings": list(self.warnings),
        }


class RulesHolder:
    """Owns the active RuleSet; everything that needs rules reads `holder.current`."""

    name = "rules"

    def __init__(
        self,
        rules_dir: Path,
        inventory_file: Path | None = None,
        catalogue: CatalogueHolder | None = None,
    ) -> None:
        self.rules_dir = rules_dir
        self.inventory_file = inventory_file
        self.catalogue = catalogue  # the daemon's one holder; each load checks the files against it
        self.current = RuleSet()
        self.last: ReloadResult | None = None
        self._lock = asyncio.Lock()
        self._cache = CompileCache()  # a reload compiles only the files that changed

    @property
    def errors(self) -> list[RuleError]:
        return self.last.errors if self.last is not None else []

    def load_initial(self) -> None:
        """First load, at start-up: raises RuleErrors so a broken set stops the daemon before serving."""
        result = self.reload_now("start")
        if not result.ok:
            raise RuleErrors(result.errors)

    def reload_now(self, trigger: str) -> ReloadResult:
        """Compile and swap in the calling thread (commands, tests); see `reload` for the daemon."""
        return self._finish(trigger, self._compile())

    async def reload(self, trigger: str) -> ReloadResult:
        async with self._lock:
            outcome = await asyncio.to_thread(self._compile)
            return self._finish(trigger, outcome)

    def install(self, new: RuleSet, trigger: str = "start") -> ReloadResult:
        """Take a set compiled elsewhere (`rules test` builds one per case) as if just loaded."""
        return self._finish(trigger, new)

    def swap(self, new: RuleSet) -> None:
        new.adopt_state(self.current)
        self.current = new
        STATS.retain(r.info.name for r in new.rules)
        RULES_LOADED.set(len(new.rules))

    def _compile(self) -> RuleSet | RuleErrors:
        if not self.rules_dir.exists():
            # `make run` in a fresh checkout has rules/; elsewhere no directory simply means no rules.
            log.warning("rules directory %s does not exist: running with no rules", self.rules_dir)
            return RuleSet(rules_dir=self.rules_dir)
        try:
            had_rules = frozenset(r.info.position.file for r in self.current.rules)
            return load_rules(self.rules_dir, self.inventory_file, self.catalogue, had_rules, self._cache)
        except RuleErrors as e:
            return e

    def _finish(self, trigger: str, outcome: RuleSet | RuleErrors) -> ReloadResult:
        now = time.time()
        if isinstance(outcome, RuleErrors):
            for err in outcome.errors:
                log.error("rules %s: %s", trigger, err)
            log.error(
                "rules %s: %d error(s); keeping the previous set of %d rules",
                trigger,
                len(outcome.errors),
                len(self.current.rules),
            )
            RELOAD_SUCCESS.set(0)
            RELOADS.labels("failure").inc()
            STATS.retain(r.info.name for r in self.current.rules)  # forget counters of the rejected set
            self.last = ReloadResult(False, trigger, now, len(self.current.rules), outcome.errors)
            return self.last
        self.swap(outcome)
        RELOAD_SUCCESS.set(1)
        RELOADS.labels("success").inc()
        LAST_SUCCESS.set(now)
        log.info("rules %s: loaded %d rules from %d files", trigger, len(outcome.rules), len(outcome.files))
        _log_warnings(trigger, outcome.warnings)
        self.last = ReloadResult(True, trigger, now, len(outcome.rules), warnings=outcome.warnings)
        return self.last

    def watched(self) -> list[Path]:
        if not self.rules_dir.is_dir():
            log.warning(
                "rules: %s is not a directory; not watching it (SIGHUP and the API still reload)",
                self.rules_dir,
            )
            return []
        return [self.rules_dir, *self._files()]

    def _files(self) -> list[Path]:
        """The inventory and the files the loaded rules read (topology files)."""
        inventory = [self.inventory_file] if self.inventory_file is not None else []
        return inventory + self.current.data_files

    def owns(self, path: Path) -> bool:
        """A rule file (not hidden, e.g. an editor's swap file) under the directory, the inventory,
        or a file the rules read."""
        if any(path == f.resolve() for f in self._files()):
            return True
        rules_dir = self.rules_dir.resolve()
        return (
            path.is_relative_to(rules_dir)
            and path.name.endswith(WATCHED_SUFFIXES)
            and not any(part.startswith(".") for part in path.relative_to(rules_dir).parts)
        )


def _log_warnings(trigger: str, warnings: list[str]) -> None:
    for w in warnings[:LOGGED_WARNINGS]:
        log.warning("rules %s: %s", trigger, w)
    if len(warnings) > LOGGED_WARNINGS:
        log.warning(
            "rules %s: %d more warnings like these; `correlator rules check` lists them all",
            trigger,
            len(warnings) - LOGGED_WARNINGS,
        )
