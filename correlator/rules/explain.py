"""`rules explain`: run one event through the level-1 rules and record, rule by rule, what changed.

Uses the same index, matchers and actions as the filter stage, on a copy of the event, so the trace
is exactly what the daemon would do (de-duplication and rate-limit state start empty).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from correlator.event import Event
from correlator.rules.ruleset import RuleSet

_ABSENT = object()


@dataclass
class Step:
    rule: str
    where: str
    matched: bool
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, before, after)
    removed: str | None = None  # drop / rate_limit / duplicate
    stopped: bool = False
    error: str | None = None


@dataclass
class Explanation:
    event_in: dict[str, Any]
    event_out: dict[str, Any] | None
    candidates: int
    total_rules: int
    steps: list[Step]
    level2_rules: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_in": self.event_in,
            "event_out": self.event_out,
            "candidates": self.candidates,
            "level1_rules": self.total_rules,
            "steps": [
                {
                    "rule": s.rule,
                    "where": s.where,
                    "matched": s.matched,
                    "changes": [{"field": f, "before": _j(b), "after": _j(a)} for f, b, a in s.changes],
                    "removed": s.removed,
                    "stopped": s.stopped,
                    "error": s.error,
                }
                for s in self.steps
            ],
            "level2_rules": self.level2_rules,
        }

    def text(self, show_unmatched: bool = False) -> str:
        lines = [f"checked {self.candidates} of {self.total_rules} level-1 rules (the others cannot match)"]
        n = 0
        for s in self.steps:
            if not s.matched and not show_unmatched and s.error is None:
                continue
            if not s.matched:
                lines.append(f"   - {s.rule} ({s.where}): no match")
                continue
            n += 1
            lines.append(f"{n:>3}. {s.rule} ({s.where}): matched")
            for f, before, after in s.changes:
                lines.append(f"       {f}: {_show(before)} -> {_show(after)}")
            if s.error:
                lines.append(f"       error: {s.error} (event passed on unchanged by this rule)")
            if s.removed:
                lines.append(f"       event removed ({s.removed})")
            if s.stopped:
                lines.append("       stop: no later rule sees the event")
        if n == 0:
            lines.append("no rule matched: the event passes unchanged")
        if self.event_out is None:
            lines.append("result: removed at level 1")
        else:
            lines.append("result: kept")
            if self.level2_rules:
                lines.append(f"level-2 rules that match it next: {', '.join(self.level2_rules)}")
        return "\n".join(lines)


def explain(ruleset: RuleSet, event: Event) -> Explanation:
    ev = copy.deepcopy(event)
    event_in = event.to_dict()
    candidates = ruleset.index.candidates(ev)
    checked = len(candidates)
    steps: list[Step] = []
    removed = False
    updates: list[Event] = []
    i = 0
    while i < len(candidates):
        rule = candidates[i]
        i += 1
        where = str(rule.info.position)
        step = Step(rule.info.name, where, False)
        steps.append(step)
        try:
            if not rule.match(ev):
                continue
        except Exception as e:
            step.error = repr(e)
            continue
        step.matched = True
        before = _flat(ev.to_dict())
        try:
            step.removed = rule.apply(ev, updates)
        except Exception as e:
            step.error = repr(e)
        after = _flat(ev.to_dict())
        step.changes = [
            (k, before.get(k, _ABSENT), after.get(k, _ABSENT))
            for k in sorted(set(before) | set(after))
            if before.get(k, _ABSENT) != after.get(k, _ABSENT)
        ]
        if step.removed:
            removed = True
            break
        if rule.stop and step.error is None:
            step.stopped = True
            break
        if rule.reindex:
            candidates = tuple(r for r in ruleset.index.candidates(ev) if r.info.order > rule.info.order)
            checked += len(candidates)
            i = 0
    level2 = [
        r.info.name
        for r in ruleset.rules
        if r.info.kind != "filter" and not removed and _level2_match(r.compiled, ev)
    ]
    return Explanation(
        event_in, None if removed else ev.to_dict(), checked, len(ruleset.filters), steps, level2
    )


def _level2_match(rule: Any, ev: Event) -> bool:
    """Whether a level-2 rule's matcher takes the event (its own state decides what happens then)."""
    match = getattr(rule, "match", None)
    try:
        return bool(match(ev)) if match is not None else False
    except Exception:
        return False


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _show(v: Any) -> str:
    return "(absent)" if v is _ABSENT else repr(v)


def _j(v: Any) -> Any:
    return None if v is _ABSENT else v
