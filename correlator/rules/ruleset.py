"""A compiled, immutable rule set and its index: the object the filter stage reads once per batch.

The index files each level-1 rule under the one field its top-level match pins (type, else source,
else host), so an event only meets the rules that could match it plus the unpinned ones, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.event import Event
from correlator.inventory import Inventory
from correlator.logs import RateLimitedLog
from correlator.rules.filter import INDEXED_FIELDS, Conditions, Deduper, FilterRule
from correlator.rules.registry import RuleInfo

_CACHE_LIMIT = 200_000
_ratelog = RateLimitedLog(logging.getLogger(__name__))


@dataclass(frozen=True, slots=True)
class LoadedRule:
    info: RuleInfo
    compiled: Any  # FilterRule for kind filter; whatever the kind's build returned otherwise


class FilterIndex:
    def __init__(self, rules: list[FilterRule]) -> None:
        self._unpinned: list[FilterRule] = []
        self._by: dict[str, dict[str, list[FilterRule]]] = {f: {} for f in INDEXED_FIELDS}
        self._patterns: dict[str, list[FilterRule]] = {"type": [], "source": []}
        for r in rules:
            if r.index is not None:
                fname, values = r.index
                for v in values:
                    self._by[fname].setdefault(v, []).append(r)
            elif r.pattern is not None:
                self._patterns[r.pattern[0]].append(r)
            else:
                self._unpinned.append(r)
        # The cache key holds a field's value only when some rule is filed under that value (or, for
        # type and source, some rule has a glob on it), so its size is bounded by the rules and the
        # few distinct types and sources, never by the traffic.
        by_type, by_source, by_host = self._by["type"], self._by["source"], self._by["host"]
        any_type, any_source = bool(self._patterns["type"]), bool(self._patterns["source"])
        if not by_source and not by_host and not any_source:
            if any_type:
                self._key: Callable[[Event], Any] = lambda ev: ev.type
            else:
                self._key = lambda ev: ev.type if ev.type in by_type else None
        else:

            def key(ev: Event) -> Any:
                return (
                    ev.type if any_type or ev.type in by_type else None,
                    ev.source if any_source or ev.source in by_source else None,
                    ev.host if ev.host in by_host else None,
                )

            self._key = key
        self._cache: dict[Any, tuple[FilterRule, ...]] = {}
        self.size = len(rules)

    def candidates(self, ev: Event) -> tuple[FilterRule, ...]:
        key = self._key(ev)
        found = self._cache.get(key)
        if found is None:
            found = self._merge(ev)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _merge(self, ev: Event) -> tuple[FilterRule, ...]:
        merged = list(self._unpinned)
        for f in INDEXED_FIELDS:
            merged.extend(self._by[f].get(getattr(ev, f), ()))
        for f, patterned in self._patterns.items():
            value = getattr(ev, f)
            merged.extend(r for r in patterned if r.pattern is not None and r.pattern[1](value))
        merged.sort(key=lambda r: r.info.order)
        return tuple(merged)


@dataclass
class RuleSet:
    """Every rule of every kind, in order; level-1 rules also indexed. Never mutated once built."""

    rules: list[LoadedRule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    inventory: Inventory = field(default_factory=Inventory)
    rules_dir: Path | None = None
    loaded_at: float = field(default_factory=time.time)
    data_files: list[Path] = field(default_factory=list)  # read by rules (topology files)
    warnings: list[str] = field(default_factory=list)  # what the files say against the service catalogue

    def __post_init__(self) -> None:
        self.filters: list[FilterRule] = [
            r.compiled for r in self.rules if isinstance(r.compiled, FilterRule)
        ]
        self.index = FilterIndex(self.filters)
        self._by_name = {r.info.name: r for r in self.rules}
        self._share_conditions(Conditions())

    def _share_conditions(self, conditions: Conditions) -> None:
        self.conditions = conditions
        for r in self.filters:
            dedup = r.stateful.get("dedup")
            if isinstance(dedup, Deduper):
                dedup.conditions = conditions

    def of_kind(self, kind: str) -> list[Any]:
        """The compiled rules of one kind, in set order (how level-2 stages find theirs)."""
        return [r.compiled for r in self.rules if r.info.kind == kind]

    def get(self, name: str) -> LoadedRule | None:
        return self._by_name.get(name)

    def adopt_state(self, old: RuleSet) -> None:
        """Keep de-duplication and rate-limit windows of rules that survive a reload unchanged."""
        self._share_conditions(old.conditions)
        for r in self.filters:
            prev = old.get(r.info.name)
            if prev is not None and isinstance(prev.compiled, FilterRule):
                r.adopt(prev.compiled)

    def process(self, ev: Event, updates: list[Event]) -> str | None:
        """Run the level-1 rules on one event; returns why it was removed, or None to keep it."""
        reason = self._process(ev, updates, self.index.candidates(ev))
        if reason is None or reason == "duplicate":
            self.conditions.observe(ev)
        return reason

    def run(self, events: list[Event], updates: list[Event]) -> list[Event]:
        """`process` on each event of a batch; returns those kept, in order (the filter stage)."""
        kept: list[Event] = []
        candidates_of = self.index.candidates
        rules = self._process
        observe = self.conditions.observe
        for ev in events:
            candidates = candidates_of(ev)
            if not candidates:  # no rule can match: kept, and no rule to run
                observe(ev)
                kept.append(ev)
                continue
            reason = rules(ev, updates, candidates)
            if reason is None:
                observe(ev)
                kept.append(ev)
            elif reason == "duplicate":
                observe(ev)
        return kept

    def _process(self, ev: Event, updates: list[Event], candidates: tuple[FilterRule, ...]) -> str | None:
        """The rules themselves (see `process`), on the candidates the index gave for `ev`.

        A rule that raises (a bug, or a value no template foresaw) is counted and skipped: the event
        goes on to the next rule, never lost.
        """
        i = 0
        n = len(candidates)
        while i < n:
            rule = candidates[i]
            i += 1
            try:
                check = rule.check  # the match beyond what the index tested
                if check is not None and not check(ev):
                    continue
                rule.counters.matches += 1
                steps = rule.steps
                if steps:
                    reason = steps[0](ev, updates) if len(steps) == 1 else rule.run(ev, updates)
                    if reason is not None:
                        rule.counters.dropped[reason] += 1
                        return reason
            except Exception as e:
                rule.counters.errors += 1
                _ratelog.warning(rule.info.name, "rule %s failed on event %s: %r", rule.info.name, ev.id, e)
                if not rule.reindex:
                    continue
                # It may have set the type or host before failing: the candidates must follow, as
                # the rules after it test only what the index did not.
            else:
                if rule.stop:
                    return None
            if rule.reindex:
                # The type or host changed: later rules are those filed under the new values.
                order = rule.info.order
                candidates = tuple(r for r in self.index.candidates(ev) if r.info.order > order)
                n = len(candidates)
                i = 0
        return None
