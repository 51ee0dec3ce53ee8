"""The correlate stage: runs every event through the level-2 rules in order, on the event-time clock.

Sits after the first-level (filter) stage. Per event it advances the clock to the event's time, so
timers (pair timeouts, missed heartbeats, group flushes) fire exactly between the events they fall
between; what timers produce goes on after level 2, and `take_pending` hands it to the pipeline when
the live ticker fires timers with no event arriving (see Pipeline.flush).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client.metrics import Counter

from correlator.clock import Clock, Timer
from correlator.correlation.core import ENGINE_METRICS, Engine, Sink
from correlator.correlation.index import EngineIndex
from correlator.correlation.topology import TopologyRule
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.pipeline import StageContext
from correlator.rules.reload import RulesHolder

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

LATE = Counter(
    "correlator_correlation_late_events_total",
    "Events older than the allowed lateness, correlated at the current clock time instead",
)
DEPTH_LIMIT = Counter(
    "correlator_correlation_depth_limit_total",
    "Correlated events not fed to level 2 again because the emit depth limit was reached",
)
TIMER_EVENTS = Counter(
    "correlator_correlation_timer_events_total", "Events made by level-2 timers (timeouts, missed, groups)"
)


class Tracer(Protocol):
    """Runs `engine.on_event(ev, t)` and records what it did; only `rules explain` sets one."""

    def on_event(self, engine: Engine, ev: Event, t: float, depth: int) -> None: ...


_NEVER = 1 << 62  # store position of rules with no snapshot: never re-fed


class Correlate:
    name = "correlate"

    def __init__(
        self,
        engines: list[Engine],
        lateness: float = 5.0,
        max_depth: int = 3,
        sweep_every: float = 60.0,
        wall: Callable[[], float] = time.time,
        rules: RulesHolder | None = None,
    ) -> None:
        names = [e.name for e in engines]
        if len(set(names)) != len(names):
            raise ValueError("level-2 rule names must be unique")
        self.engines = engines
        # Topology rules with `suppress` review the incident requests of the other rules.
        self._gates: tuple[TopologyRule, ...] = _gates(engines)
        self.lateness = lateness
        self.max_depth = max_depth
        self.sweep_every = sweep_every
        self._wall = wall
        self.sink = Sink()
        self.clock: Clock | None = None
        self._sweeper: Timer | None = None  # one sweep chain, on the clock bound last
        self._use_index(EngineIndex(engines))
        for e in engines:
            ENGINE_METRICS.show(e)
        self._rules = rules
        self._ruleset: object = None
        self._skip: dict[str, int] | None = None  # only while re-feeding stored events (refeed)
        self._pos = 0
        self.tracer: Tracer | None = None
        self._reviewed = 0  # sink.responses before this index went through the gates

    # -- the stage --------------------------------------------------------------------------------
    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        clock = ctx.clock
        self.sync()
        self.bind(clock)
        sink = self.sink
        out: list[Event] = []
        self._take_timer_events(out)
        live = ctx.live
        wall_now = self._wall() if live else 0.0
        lateness = self.lateness
        gates = self._gates
        responses = sink.responses
        run = self._run
        tables = self._tables
        table = self.index.table
        now = clock.now()  # only this loop moves the clock while it runs
        heap = clock.heap
        traced = self.tracer is not None or self._skip is not None
        # The source's tables, looked up again only when the source changes: a batch's events
        # usually share one (the same text object, from one collector or file).
        source: str | None = None
        by_type: dict[str, tuple[Engine, ...]] = {}
        other: tuple[Engine, ...] = ()
        for ev in events:
            t = ev.time
            if t > now:
                if live and t > wall_now:
                    t = max(now, wall_now)  # a sender clock running ahead must not drag everyone's time
                if t > now:
                    now = t
                    if heap and heap[0][0] <= t:  # a timer may be due: `advance_to` fires it
                        clock.advance_to(t)
                        if sink.timer_events:
                            self._take_timer_events(out)
                    else:  # none is: moving the time is all `advance_to` would do (see Clock.heap)
                        clock.time = t
            elif t < now - lateness:
                LATE.inc()
                ev.attributes["late_seconds"] = round(now - t, 3)  # visible on the stored event
                t = now
            if gates and self._reviewed < len(responses):
                self._review()  # what timers asked for, against the state before this event
            if tables is not None:  # `_rules_of`, inline: most events meet few rules or none
                if ev.source is not source:
                    source = ev.source
                    by_type, other = tables.get(source) or table(source)
                rules = by_type.get(ev.type, other)
            else:
                rules = self.index.rules_for(ev.type, ev.host, ev.source)
            out.append(ev)
            if not rules:
                continue
            if traced:
                run(ev, t, 0, out, rules)
            else:  # `_run`, inline: most events meet one rule, and a call costs what the rule does
                sink.suppressed = None  # a timer hook's `suppress` marked its own event, not this one
                try:
                    for e in rules:
                        check = e.check  # the match beyond what the index decided
                        if check is not None and not check(ev):
                            continue
                        e.counters.matches += 1
                        e.on_event(ev, t)
                        if sink.suppressed is not None:
                            break
                except Exception:  # `_run` counts `e`, runs the rules after it and feeds their emits
                    self._run(ev, t, 0, out, rules, e)
                sink.suppressed = None
                if sink.emitted:
                    self._feed_emitted(t, 0, out)
            if gates and self._reviewed < len(responses):
                self._review()
        self._hand_over(ctx)
        return out

    def _review(self) -> None:
        """Let the topology rules turn incidents asked for on symptoms into updates of their root's."""
        responses = self.sink.responses
        while self._reviewed < len(responses):
            start = self._reviewed
            self._reviewed = len(responses)
            for g in self._gates:
                g.gate(responses, start)

    def _hand_over(self, ctx: StageContext) -> None:
        if self._gates:
            self._review()
        ctx.responses.extend(self.sink.responses)
        self.sink.responses.clear()
        self._reviewed = 0

    def take_pending(self, ctx: StageContext) -> list[Event]:
        """Events and responses that timers made since the last batch (the live ticker's path)."""
        self.sync()
        self.bind(ctx.clock)
        out: list[Event] = []
        self._take_timer_events(out)
        self._hand_over(ctx)
        return out

    def sync(self) -> None:
        """Pick up a reloaded rule set (read once per batch, like the filter stage)."""
        if self._rules is None:
            return
        current = self._rules.current
        if current is self._ruleset:
            return
        self._ruleset = current
        self.set_engines([r.compiled for r in current.rules if isinstance(r.compiled, Engine)])

    def set_engines(self, engines: list[Engine]) -> None:
        """Swap in a new set of rules; an unchanged rule (same name, kind and text) keeps its state."""
        old = {e.name: e for e in self.engines}
        result: list[Engine] = []
        for e in engines:
            prev = old.pop(e.name, None)
            if prev is not None and prev.kind == e.kind and e.signature and prev.signature == e.signature:
                result.append(prev)
                continue
            if prev is not None:
                prev.detach()
            if self.clock is not None:
                e.attach(self.clock, self.sink)
            ENGINE_METRICS.show(e)
            result.append(e)
        for gone in old.values():
            gone.detach()
            ENGINE_METRICS.hide(gone)
        self.engines = result
        self._use_index(EngineIndex(result))
        self._gates = _gates(result)

    def _use_index(self, index: EngineIndex) -> None:
        self.index = index
        # The usual rule set pins no hosts: then `_correlate` finds an event's rules in the index's
        # tables itself, not with a method call per event.
        self._tables = index.tables()

    def bind(self, clock: Clock) -> None:
        """Attach the engines to the clock of this run (replay makes one per file)."""
        if clock is self.clock:
            return
        self.clock = clock
        for e in self.engines:
            e.attach(clock, self.sink)
        if self._sweeper is not None:  # bound again (a cluster worker taking a partition): not twice
            self._sweeper.cancel()
        self._sweeper = clock.call_at(clock.now() + self.sweep_every, self._sweep)

    # -- helpers ----------------------------------------------------------------------------------
    def _correlate(self, ev: Event, t: float, depth: int, out: list[Event]) -> None:
        out.append(ev)
        rules = self._rules_of(ev)
        if rules:
            self._run(ev, t, depth, out, rules)

    def _rules_of(self, ev: Event) -> tuple[Engine, ...]:
        tables = self._tables
        if tables is not None:  # the usual rule set: two dictionary lookups, no call
            by_type, other = tables.get(ev.source) or self.index.table(ev.source)
            return by_type.get(ev.type, other)
        return self.index.rules_for(ev.type, ev.host, ev.source)

    def _feed_emitted(self, t: float, depth: int, out: list[Event]) -> None:
        """What the rules emitted on an event of `depth` re-enters level 2, after it in `out`."""
        sink = self.sink
        if sink.emitted:
            emitted = sink.emitted
            sink.emitted = []
            for new in emitted:
                if depth >= self.max_depth:
                    DEPTH_LIMIT.inc()
                    _limited.warning(
                        "depth",
                        "correlated event %s reached the emit depth limit %d",
                        new.type,
                        self.max_depth,
                    )
                    out.append(new)
                else:
                    self._correlate(new, t, depth + 1, out)

    def _run(
        self,
        ev: Event,
        t: float,
        depth: int,
        out: list[Event],
        rules: tuple[Engine, ...],
        failed: Engine | None = None,
    ) -> None:
        """The rules that may match `ev`, in order until one suppresses it; then what they emitted goes
        after `ev` in `out`. Also re-feeding after a crash (`refeed`) and tracing (`rules explain`).
        `failed`: a rule of `rules` that raised on `ev` in `__call__`'s loop, which hands the rules
        after it over to this one.

        The one place where a rule that raises is counted and skipped: the other rules and the
        event go on. The `try` is around the loop, not each rule; after a failure the loop goes on
        with an iterator past the failed rule, so each failure costs one step, however many.
        """
        sink = self.sink
        skip = self._skip
        tracer = self.tracer
        rest: Iterable[Engine] = rules
        if failed is None:
            # A timer hook's `suppress` marks its own event and leaves the marker set: it must not
            # stop the rules for this one.
            sink.suppressed = None
        else:  # called from `__call__`'s `except`: its exception is the one logged
            self._failed(failed, ev)
            rest = _after(rules, failed)
        while True:
            try:
                if skip is None and tracer is None:
                    for e in rest:
                        check = e.check  # None: the index decided the whole match (the type)
                        if check is not None and not check(ev):
                            continue
                        e.counters.matches += 1
                        e.on_event(ev, t)
                        if sink.suppressed is not None:
                            break
                else:
                    for e in rest:
                        if skip is not None and skip.get(e.name, _NEVER) >= self._pos:
                            continue  # this rule's snapshot already includes the event
                        check = e.check
                        if check is not None and not check(ev):
                            continue
                        if skip is None:  # a re-fed event matched before the crash: not counted twice
                            e.counters.matches += 1
                        if tracer is None:
                            e.on_event(ev, t)
                        else:
                            tracer.on_event(e, ev, t, depth)
                        if sink.suppressed is not None:
                            break
                break
            except Exception:
                self._failed(e, ev)
                if rest is rules:
                    rest = _after(rules, e)
        sink.suppressed = None
        if sink.emitted:
            self._feed_emitted(t, depth, out)

    def _failed(self, e: Engine, ev: Event) -> None:
        e.counters.errors += 1  # correlator_rule_errors_total{rule}
        _limited.warning(f"rule-error:{e.name}", "level-2 rule %s failed on event %s", e.name, ev.id)
        log.debug("rule %s failed", e.name, exc_info=True)

    def _take_timer_events(self, out: list[Event]) -> None:
        sink = self.sink
        if sink.timer_events:
            TIMER_EVENTS.inc(len(sink.timer_events))
            out.extend(sink.timer_events)
            sink.timer_events.clear()

    def _sweep(self, now: float) -> None:
        for e in self.engines:
            try:
                e.expire(now)
            except Exception:
                log.exception("level-2 rule %s failed to expire its state", e.name)
        if self.clock is not None:
            self._sweeper = self.clock.call_at(now + self.sweep_every, self._sweep)

    # -- restart ----------------------------------------------------------------------------------
    def refeed(self, rows: list[tuple[int, Event]], taken_at: dict[str, int], clock: Clock) -> None:
        """After a crash: feed events stored since each rule's snapshot (`taken_at`: store position per
        rule) to that rule again, on `clock`, discarding what they produce (it was stored already).

        Rule-made events are skipped: emitted ones are made again from their causes, timer ones by
        the clock. Rules without a snapshot (new since) are not fed: they start empty, as on reload.
        """
        self.bind(clock)
        self._skip = taken_at
        self.sink.refeeding = True  # hooks run again here fired before the crash: not counted twice
        discard: list[Event] = []
        wall = self._wall()
        try:
            for pos, ev in rows:
                if ev.source == "correlator":
                    continue
                self._pos = pos
                t = ev.time
                now = clock.now()
                if t > now:
                    # Live, an event stamped ahead of the wall clock was correlated at its arrival
                    # (__call__); so here: a stamp in 2050 or 9999 never walks the clock (and its
                    # sweep timer, a minute at a time) decades ahead, nor past a window still open
                    # at the crash, whose timeout then fires live after the re-feed and is kept.
                    t = max(now, min(t, ev.received, wall))
                    if t > now:
                        clock.advance_to(t)
                elif t < now - self.lateness:
                    t = now
                self._correlate(ev, t, 0, discard)
                if self._gates:
                    self._review()  # what is asked is discarded, but the holds are state to rebuild
        finally:
            self._skip = None
            sink = self.sink
            sink.refeeding = False
            sink.timer_events.clear()
            sink.emitted.clear()
            sink.responses.clear()
            self._reviewed = 0

    def snapshot(self) -> dict[str, tuple[str, Any]]:
        self.sync()
        return {e.name: (e.kind, e.snapshot()) for e in self.engines}

    def restore(self, saved: dict[str, tuple[str, Any]]) -> list[str]:
        """Load state saved by `snapshot` for rules that still exist with the same kind; returns them."""
        self.sync()
        done: list[str] = []
        for e in self.engines:
            item = saved.get(e.name)
            if item is None or item[0] != e.kind or item[1] is None:
                continue
            try:
                e.restore(item[1])
                done.append(e.name)
            except Exception:
                log.exception(
                    "could not restore the state of level-2 rule %s; its state may be partial", e.name
                )
        if self.clock is not None:
            for e in self.engines:
                e.rearm()
        return done


def _after(rules: tuple[Engine, ...], failed: Engine) -> Iterator[Engine]:
    """An iterator over the rules after `failed` (found by identity: it is one of them)."""
    rest = iter(rules)
    for e in rest:
        if e is failed:
            break
    return rest


def _gates(engines: list[Engine]) -> tuple[TopologyRule, ...]:
    return tuple(e for e in engines if isinstance(e, TopologyRule) and e.suppress)
