"""`rules explain`: run events through the rules as the daemon would, and say rule by rule what happened.

The events go one at a time, in the order given, through the real pipeline on a virtual clock
(replay.Stepper); in between, the clock steps from timer to timer, so timeouts and missed heartbeats
show at their own time. Level 1 is traced by a filter stage put in the real one's place (same index,
matchers and actions as RuleSet.process); level 2 by a tracer on the correlate stage
(correlation/trace.py). All state (de-duplication, windows, pending pairs) starts empty.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import orjson

from correlator.config import Config
from correlator.correlation.core import Fired
from correlator.correlation.stage import Correlate
from correlator.correlation.trace import (
    Change,
    Level2Tracer,
    Reached,
    change_dicts,
    field_changes,
    fired_dict,
    flat,
    reached_dict,
    reached_lines,
    show,
    timer_lines,
)
from correlator.event import Event, iso
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.replay import Stepper
from correlator.rules.reload import RulesHolder
from correlator.rules.ruleset import RuleSet


@dataclass
class Step:
    rule: str
    where: str
    matched: bool
    changes: list[Change] = field(default_factory=list)
    removed: str | None = None  # drop / rate_limit / duplicate
    stopped: bool = False
    error: str | None = None


@dataclass
class Level1:
    """What the level-1 rules did to one event."""

    candidates: int
    steps: list[Step]
    removed: str | None


@dataclass
class EventTrace:
    n: int  # position in the input, from 1
    event_in: dict[str, Any]
    event_out: dict[str, Any] | None  # after level 1 and level 2; None when level 1 removed it
    level1: Level1
    level2: list[Reached]
    not_reached: list[tuple[str, str]]  # level-2 rules the event could meet but did not take, and why


@dataclass
class TimerTrace:
    fired: Fired
    state: str  # the key's state right after


@dataclass
class Trace:
    timeline: list[EventTrace | TimerTrace]
    positions: dict[str, str]  # rule -> file:line:column
    level1_rules: int
    level2_rules: int

    def where(self, rule: str) -> str:
        return self.positions.get(rule, "?")

    def as_dict(self) -> dict[str, Any]:
        return {
            "level1_rules": self.level1_rules,
            "level2_rules": self.level2_rules,
            "timeline": [
                self._event_dict(item) if isinstance(item, EventTrace) else self._timer_dict(item)
                for item in self.timeline
            ],
        }

    def text(self, show_unmatched: bool = False) -> str:
        lines: list[str] = []
        for item in self.timeline:
            if isinstance(item, TimerTrace):
                lines.extend(timer_lines(item.fired, item.state, self.where))
            else:
                lines.extend(self._event_lines(item, show_unmatched))
        return "\n".join(lines)

    def _event_lines(self, t: EventTrace, show_unmatched: bool) -> list[str]:
        ev = t.event_in
        lines = [
            f"== event {t.n} at {iso(ev['time'])}: {ev['type']} on {ev['host']}",
            *_level1_lines(t.level1, self.level1_rules, show_unmatched),
        ]
        if t.event_out is None:
            lines.append("result: removed at level 1")
            return lines
        lines.append("result: kept")
        late = t.event_out["attributes"].get("late_seconds")
        if late is not None:
            lines.append(f"late by {late}s: level 2 took it at the clock's time")
        unmatched = t.not_reached if show_unmatched else []
        if t.level2 or unmatched:
            lines.append("level 2:")
        shown: Event | None = None
        for rec in t.level2:
            if rec.depth and rec.event is not shown:
                lines.append(f"  emitted {rec.event.type} ({rec.event.id}) enters level 2:")
            shown = rec.event
            lines.extend(reached_lines(rec, self.where))
        lines.extend(f"   - {rule} ({self.where(rule)}): {why}" for rule, why in unmatched)
        if not t.level2:
            lines.append("no level-2 rule took the event")
        lines.append("final event: " + orjson.dumps(t.event_out).decode())
        return lines

    def _event_dict(self, t: EventTrace) -> dict[str, Any]:
        return {
            "kind": "event",
            "n": t.n,
            "time": t.event_in["time"],
            "event_in": t.event_in,
            "event_out": t.event_out,
            "candidates": t.level1.candidates,
            "steps": [
                {
                    "rule": s.rule,
                    "where": s.where,
                    "matched": s.matched,
                    "changes": change_dicts(s.changes),
                    "removed": s.removed,
                    "stopped": s.stopped,
                    "error": s.error,
                }
                for s in t.level1.steps
            ],
            "level2": [reached_dict(r, self.where) for r in t.level2],
            "level2_not_reached": [
                {"rule": rule, "where": self.where(rule), "why": why} for rule, why in t.not_reached
            ],
        }

    def _timer_dict(self, t: TimerTrace) -> dict[str, Any]:
        f = t.fired
        fired = fired_dict(f)
        del fired["at"]  # the item's time
        return {
            "kind": "timer",
            "time": f.at,
            "rule": f.rule,
            "where": self.where(f.rule),
            "key": list(f.key),
            **fired,
            "state": t.state,
        }


async def explain(holder: RulesHolder, config: Config, events: list[Event], wait: float = 0.0) -> Trace:
    """Run `events` in order through the pipeline `config` and the rules of `holder` make, tracing
    every rule; then let `wait` seconds of event time pass, so pending timers fire."""
    pipeline = build_pipeline(config, holder)
    level1 = TracingFilter(holder)
    pipeline.stages = [level1 if s.name == "filter" else s for s in pipeline.stages]
    stage = pipeline.find("correlate")
    if not isinstance(stage, Correlate):
        raise RuntimeError("the pipeline has no correlate stage")
    tracer = Level2Tracer(stage)
    timeline: list[EventTrace | TimerTrace] = []
    stepper = Stepper(pipeline, events[0].time if events else 0.0)

    async def until(t: float) -> None:
        # Timer by timer, so each fire is shown with the state of its key right after it.
        while (deadline := stepper.clock.next_deadline()) is not None and deadline <= t:
            await stepper.advance(deadline)
            timeline.extend(TimerTrace(f, tracer.state(f)) for f in tracer.take_timer_fires())

    for n, ev in enumerate(events, start=1):
        await until(ev.time)
        event_in = copy.deepcopy(ev.to_dict())
        await stepper.feed(ev)
        timeline.extend(TimerTrace(f, tracer.state(f)) for f in tracer.take_timer_fires())
        l1 = level1.traces.pop()
        kept = l1.removed is None
        reached = tracer.take_reached()
        not_reached = tracer.not_reached(ev, reached) if kept else []
        event_out = copy.deepcopy(ev.to_dict()) if kept else None
        timeline.append(EventTrace(n, event_in, event_out, l1, reached, not_reached))
    if events and wait > 0:
        end = stepper.clock.now() + wait
        await until(end)
        await stepper.advance(end)
    rs = holder.current
    return Trace(
        timeline,
        {r.info.name: str(r.info.position) for r in rs.rules},
        len(rs.filters),
        len(stage.engines),
    )


class TracingFilter:
    """The filter stage of `rules explain`: level 1 as RuleSet.process runs it, with a trace per event."""

    name = "filter"

    def __init__(self, rules: RulesHolder) -> None:
        self._rules = rules
        self.traces: list[Level1] = []

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        ruleset = self._rules.current
        kept = []
        for ev in events:
            trace = trace_level1(ruleset, ev, ctx.updates)
            self.traces.append(trace)
            if trace.removed is None:
                kept.append(ev)
        return kept


def trace_level1(ruleset: RuleSet, ev: Event, updates: list[Event]) -> Level1:
    """Run the level-1 rules on `ev` (in place) as RuleSet.process does, recording each candidate."""
    candidates = ruleset.index.candidates(ev)
    checked = len(candidates)
    steps: list[Step] = []
    removed: str | None = None
    i = 0
    while i < len(candidates):
        rule = candidates[i]
        i += 1
        step = Step(rule.info.name, str(rule.info.position), False)
        steps.append(step)
        try:
            if not rule.match(ev):
                continue
        except Exception as e:
            step.error = repr(e)
            continue
        step.matched = True
        before = flat(copy.deepcopy(ev.to_dict()))
        try:
            step.removed = rule.apply(ev, updates)
        except Exception as e:
            step.error = repr(e)
        step.changes = field_changes(before, flat(ev.to_dict()))
        if step.removed:
            removed = step.removed
            break
        if rule.stop and step.error is None:
            step.stopped = True
            break
        if rule.reindex:
            candidates = tuple(r for r in ruleset.index.candidates(ev) if r.info.order > rule.info.order)
            checked += len(candidates)
            i = 0
    if removed is None or removed == "duplicate":
        ruleset.conditions.observe(ev)  # as RuleSet.process: later repeats are judged against it
    return Level1(checked, steps, removed)


def _level1_lines(t: Level1, total: int, show_unmatched: bool) -> list[str]:
    lines = [f"checked {t.candidates} of {total} level-1 rules (the others cannot match)"]
    n = 0
    for s in t.steps:
        if not s.matched and not show_unmatched and s.error is None:
            continue
        if not s.matched:
            lines.append(f"   - {s.rule} ({s.where}): " + (f"error: {s.error}" if s.error else "no match"))
            continue
        n += 1
        lines.append(f"{n:>3}. {s.rule} ({s.where}): matched")
        lines.extend(f"       {f}: {show(before)} -> {show(after)}" for f, before, after in s.changes)
        if s.error:
            lines.append(f"       error: {s.error} (event passed on unchanged by this rule)")
        if s.removed:
            lines.append(f"       event removed ({s.removed})")
        if s.stopped:
            lines.append("       stop: no later rule sees the event")
    if n == 0:
        lines.append("no rule matched: the event passes unchanged")
    return lines
