"""A compiled, immutable rule set and its level-1 loop: the object the filter stage reads once per batch.

The index (correlator/rules/index.py) gives each event the level-1 rules that can match it, in
order; `run` takes each of them through its remaining conditions and its actions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.event import Event
from correlator.inventory import Inventory
from correlator.logs import RateLimitedLog
from correlator.rules.filter import FilterRule
from correlator.rules.index import FilterIndex
from correlator.rules.registry import RuleInfo
from correlator.rules.windows import MAX_KEYS, Conditions, Deduper

_ratelog = RateLimitedLog(logging.getLogger(__name__))


@dataclass(slots=True, unsafe_hash=True)  # immutable by convention, not frozen: see RuleInfo
class LoadedRule:
    info: RuleInfo
    compiled: Any  # FilterRule for kind filter; whatever the kind's build returned otherwise


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

    def run(
        self, events: list[Event], updates: list[Event], folded: list[Event] | None = None
    ) -> list[Event]:
        """`process` on each event of a batch; returns those kept, in order (the filter stage).
        The repeats de-duplication folded into `updates` go to `folded`."""
        if folded is None:
            folded = []
        conditions = self.conditions
        if len(conditions.latest) + len(events) >= MAX_KEYS:
            # The table of conditions may fill up within this batch: event by event, bounded.
            kept: list[Event] = []
            for ev in events:
                reason = self.process(ev, updates)
                if reason is None:
                    kept.append(ev)
                elif reason == "duplicate":
                    folded.append(ev)
            return kept
        # Otherwise what `process` does, inlined: the per-event calls are most of level 1's cost.
        kept = []
        key_of = self.index.key
        cached = self.index.cached
        merge = self.index.merge
        rules = self._process
        latest = conditions.latest
        for ev in events:
            key = key_of(ev)
            candidates = cached.get(key)
            if candidates is None:
                candidates = merge(key)
            if candidates:
                reason = rules(ev, updates, candidates)
                if reason is not None:
                    if reason == "duplicate":
                        latest[(ev.host, ev.resource)] = (ev.fingerprint, ev.severity)  # Conditions.observe
                        folded.append(ev)
                    continue
            latest[(ev.host, ev.resource)] = (ev.fingerprint, ev.severity)
            kept.append(ev)
        return kept

    def _process(self, ev: Event, updates: list[Event], candidates: tuple[FilterRule, ...]) -> str | None:
        """The rules themselves (see `process`), on the candidates the index gave for `ev`.

        A rule that raises (a bug, or a value no template foresaw) is counted and skipped: the event
        goes on to the next rule, never lost.
        """
        while True:
            for rule in candidates:
                try:
                    check = rule.check  # the match beyond what the index decided
                    if check is not None and not check(ev):
                        continue
                    rule.counters.matches += 1
                    act = rule.act
                    if act is not None:
                        reason = act(ev, updates)
                        if reason is not None:
                            rule.counters.dropped[reason] += 1
                            return reason
                except Exception as e:
                    rule.counters.errors += 1
                    _ratelog.warning(
                        rule.info.name, "rule %s failed on event %s: %r", rule.info.name, ev.id, e
                    )
                    if not rule.reindex:
                        continue
                    # It may have set the type or host before failing: the candidates must follow,
                    # as the rules after it test only what the index did not.
                else:
                    if not rule.stop_or_reindex:
                        continue
                    if rule.stop:
                        return None
                # The type or host changed: later rules are those the index gives for the new values.
                order = rule.info.order
                candidates = tuple(r for r in self.index.candidates(ev) if r.info.order > order)
                break
            else:
                return None
