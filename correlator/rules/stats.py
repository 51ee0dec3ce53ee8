"""Per-rule hit and drop counters: plain ints on the hot path, exported to Prometheus at scrape time.

`correlator_rule_matches_total{rule}` and `correlator_rule_dropped_events_total{rule,reason}`; rule
names come from the operator's files, so the label set is bounded by the rule set. Counters survive
reloads by rule name; rules that disappear are forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from correlator import metrics

DROP_REASONS = ("drop", "rate_limit", "duplicate")


@dataclass(slots=True, init=False)
class RuleCounters:
    matches: int
    dropped: dict[str, int]
    errors: int

    # Written out: the generated one calls a default factory, and a big set makes one per rule.
    def __init__(self, matches: int = 0, dropped: dict[str, int] | None = None, errors: int = 0) -> None:
        self.matches = matches
        self.dropped = dict.fromkeys(DROP_REASONS, 0) if dropped is None else dropped
        self.errors = errors


class RuleStats(Collector):
    def __init__(self) -> None:
        self._by_rule: dict[str, RuleCounters] = {}

    def counters(self, rule: str, fresh: RuleCounters | None = None) -> RuleCounters:
        """The rule's counters; a rule not counted yet gets `fresh` (zero, owned by no one else),
        or new ones."""
        c = self._by_rule.get(rule)
        if c is None:
            c = self._by_rule[rule] = fresh if fresh is not None else RuleCounters()
        return c

    def retain(self, names: Iterable[str]) -> None:
        keep = set(names)
        for name in [n for n in self._by_rule if n not in keep]:
            del self._by_rule[name]

    @metrics.guarded
    def collect(self) -> Iterator[CounterMetricFamily]:
        matches = CounterMetricFamily(
            "correlator_rule_matches", "Events a rule matched (its hit count)", labels=["rule"]
        )
        dropped = CounterMetricFamily(
            "correlator_rule_dropped_events",
            "Events a level-1 rule removed, by reason (drop, rate_limit, duplicate)",
            labels=["rule", "reason"],
        )
        errors = CounterMetricFamily(
            "correlator_rule_errors", "Events on which a rule's actions failed (event kept)", labels=["rule"]
        )
        for name, c in list(self._by_rule.items()):
            matches.add_metric([name], c.matches)
            errors.add_metric([name], c.errors)
            for reason, n in c.dropped.items():
                dropped.add_metric([name, reason], n)
        yield matches
        yield dropped
        yield errors


STATS = RuleStats()
REGISTRY.register(STATS)
