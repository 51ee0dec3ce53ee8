"""What every level-2 engine shares: the output sink, hook firing, bounded per-key state, metrics.

Engines (threshold.py, pair.py, ...) sit inside the correlate stage (stage.py); they receive events
that matched their rule and the clock's timer callbacks, and write what they produce into a `Sink`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import Counter
from prometheus_client.registry import REGISTRY, Collector

from correlator import metrics
from correlator.clock import Clock, Timer
from correlator.event import Event, Severity
from correlator.logs import RateLimitedLog
from correlator.responses import Response
from correlator.rules.stats import RuleCounters

log = logging.getLogger("correlator.correlation")
_limited = RateLimitedLog(log)

BOUND_HITS = Counter(
    "correlator_correlation_bound_hits_total",
    "Times a level-2 rule hit a state bound (the oldest key was evicted)",
    ["rule", "bound"],
)


class EngineMetrics(Collector):
    """`correlator_correlation_keys{rule}` and `correlator_correlation_fires_total{rule,hook}`, read
    at scrape time from plain dicts and ints. As label children they cost a `.labels()` call (label
    checks, a join, a lock) per rule at load and per rule and hook at its first fire: 17,000 calls
    for 10,000 rules, more than the rest of what a rule costs to start."""

    def __init__(self) -> None:
        self.live: dict[str, Engine] = {}  # rule name -> the engine whose keys are shown
        self._fires: dict[str, dict[str, int]] = {}  # rule -> hook -> fires; kept across reloads

    def fires_of(self, rule: str) -> dict[str, int]:
        """The rule's fire counts by hook, for its engine to add to (never pruned: a counter)."""
        counts = self._fires.get(rule)
        if counts is None:
            counts = self._fires[rule] = {}
        return counts

    def show(self, engine: Engine) -> None:
        self.live[engine.name] = engine

    def hide(self, engine: Engine) -> None:
        if self.live.get(engine.name) is engine:
            del self.live[engine.name]

    @metrics.guarded
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        keys = GaugeMetricFamily(
            "correlator_correlation_keys", "Keys with live state in a level-2 rule", labels=["rule"]
        )
        for name, e in list(self.live.items()):
            keys.add_metric([name], e.keys())
        fires = CounterMetricFamily(
            "correlator_correlation_fires", "Hooks fired by level-2 rules", labels=["rule", "hook"]
        )
        for rule, hooks in list(self._fires.items()):
            for hook, n in list(hooks.items()):
                fires.add_metric([rule, hook], n)
        yield keys
        yield fires


ENGINE_METRICS = EngineMetrics()
REGISTRY.register(ENGINE_METRICS)

Key = tuple[Any, ...]
Match = Callable[[Event], bool]
KeyFn = Callable[[Event], Key]


class Fire:
    """Why an action runs: which rule, which hook (e.g. 'timeout'), for which key, with what details."""

    __slots__ = ("extra", "from_timer", "hook", "key", "rule")

    def __init__(self, rule: str, hook: str, key: Key, from_timer: bool, extra: dict[str, Any]) -> None:
        self.rule = rule
        self.hook = hook
        self.key = key
        self.from_timer = from_timer
        self.extra = extra

    def key_text(self) -> str:
        return "/".join(map(str, self.key))

    def info(self) -> dict[str, Any]:
        return {"rule": self.rule, "hook": self.hook, "key": list(self.key), **self.extra}


@dataclass(slots=True)
class Fired:
    """A hook that ran and what its actions asked for; recorded only while `rules explain` traces."""

    rule: str
    hook: str
    key: Key
    at: float  # clock time
    from_timer: bool
    extra: dict[str, Any]  # the hook's details (count, opened_by, elapsed...)
    actions: int  # responses the rule lists for the hook (on_<hook>)
    made: Event | None  # the rule-made event the hook is about (timeout, missed, group, flapping)
    events: list[Event]  # emitted by its actions
    responses: list[Response]


class Sink:
    """Collects what engines produce while the stage processes one batch or the clock fires timers.

    `emitted` events came from processing an event and re-enter level 2; `timer_events` came from a
    timer and go straight on to the stages after level 2 (they have no trigger to be ordered after).
    """

    __slots__ = ("emitted", "refeeding", "responses", "suppressed", "timer_events", "trace")

    def __init__(self) -> None:
        self.emitted: list[Event] = []
        self.timer_events: list[Event] = []
        self.responses: list[Response] = []
        self.suppressed: str | None = None  # rule that suppressed the event being processed
        self.trace: list[Fired] | None = None  # hooks that ran, while `rules explain` traces
        self.refeeding = False  # while start-up re-feeds stored events: hooks are not counted again

    def add_event(self, ev: Event, from_timer: bool) -> None:
        (self.timer_events if from_timer else self.emitted).append(ev)

    def mark(self) -> tuple[int, int, int]:
        """Where the output lists end now; `since(mark)` is what was added after."""
        return len(self.emitted), len(self.timer_events), len(self.responses)

    def since(self, mark: tuple[int, int, int]) -> tuple[list[Event], list[Response]]:
        return self.emitted[mark[0] :] + self.timer_events[mark[1] :], self.responses[mark[2] :]


Action = Callable[[Event, Fire, Sink], None]
Hooks = dict[str, list[Action]]


def derived_id(*parts: object) -> str:
    """Deterministic id for a generated event, so replay gives identical output and the store dedups."""
    h = _DERIVED.copy()  # a copy of a prepared hash: cheaper than making one with its options
    h.update("\x1f".join([p if type(p) is str else str(p) for p in parts]).encode())
    return h.hexdigest()


_DERIVED = hashlib.blake2b(digest_size=16)


def derived_ids(*parts: str) -> Callable[[str], str]:
    """`derived_id(*parts, last)` as a function of `last`: the leading parts are hashed once, for a
    caller that derives many ids with the same parts before the last (an emit action: rule, hook,
    type; then the subject's id). Joining and hashing them per id was most of an id's cost."""
    prepared = _DERIVED.copy()
    prepared.update("".join(f"{p}\x1f" for p in parts).encode())

    def derive(last: str) -> str:
        h = prepared.copy()
        h.update((last if type(last) is str else str(last)).encode())
        return h.hexdigest()

    return derive


def generated_event(
    rule: str,
    hook: str,
    type_: str,
    t: float,
    host: str,
    resource: str,
    severity: Severity,
    message: str,
    info: dict[str, Any],
    id_parts: tuple[object, ...],
) -> Event:
    """An event made by a level-2 rule (timeout, heartbeat.missed, group, flapping...)."""
    return Event(
        derived_id(rule, hook, *id_parts),
        t,
        t,
        "correlator",
        host,
        type_,
        severity,
        resource,
        message,
        {"correlation": {"rule": rule, "hook": hook, **info}},
    )


S = TypeVar("S")


class KeyTable(OrderedDict[Key, S]):
    """Per-key state in least-recently-touched order, bounded by `max_keys` (evicting the oldest).

    Order doubles as deadline order for rules whose deadline is "last touch + constant", so one clock
    timer per rule suffices instead of one per key.

    Design choice: the table is an OrderedDict itself, so the per-event calls (`get`, `touch`,
    `in`, `len`) are the C methods, not Python ones around a dictionary: most rules look a key up
    once or twice per event.
    """

    __slots__ = ("max_keys", "rule")

    def __init__(self, rule: str, max_keys: int) -> None:
        # No OrderedDict.__init__: without arguments it does nothing, and a big set makes two
        # tables per rule.
        self.rule = rule
        self.max_keys = max_keys

    touch = OrderedDict.move_to_end  # most recently touched at the newest end

    def put(self, key: Key, state: S) -> tuple[Key, S] | None:
        """Insert at the newest end; returns the evicted (key, state) when the bound was hit."""
        self[key] = state
        if len(self) > self.max_keys:
            return self.evict_oldest()
        return None

    def evict_oldest(self) -> tuple[Key, S]:
        """The bound was hit: drop the least recently touched key, counted and logged."""
        old = self.popitem(last=False)
        BOUND_HITS.labels(self.rule, "max_keys").inc()
        _limited.warning(
            f"bound:{self.rule}",
            "rule %s: more than %d keys; evicted the least recently seen key %r",
            self.rule,
            self.max_keys,
            old[0],
        )
        return old

    def pop(self, key: Key, default: S | None = None) -> S | None:  # type: ignore[override]
        """Remove the key's state and return it; None (not KeyError) when it has none."""
        return OrderedDict.pop(self, key, default)

    def oldest(self) -> tuple[Key, S] | None:
        for item in OrderedDict.items(self):
            return item
        return None

    def pop_oldest(self) -> tuple[Key, S]:
        return self.popitem(last=False)

    def pop_due(self, deadline: Callable[[S], float], now: float) -> list[tuple[Key, S]]:
        """Remove and return, oldest first, the leading entries whose deadline is at or before `now`.

        Only for tables kept in deadline order (entries put once, never touched): the scan stops at
        the first entry not due, so it costs what it returns.
        """
        due: list[tuple[Key, S]] = []
        while self:
            item = next(iter(OrderedDict.items(self)))
            if deadline(item[1]) > now:
                break
            self.popitem(last=False)
            due.append(item)
        return due

    def items(self) -> Iterator[tuple[Key, S]]:  # type: ignore[override]
        """A snapshot of the entries: the caller may change the table while it iterates."""
        return iter(list(OrderedDict.items(self)))

    def dump(self) -> list[tuple[Key, S]]:
        """(key, state) pairs, oldest first; orjson writes tuples as arrays, so no copying per key."""
        return list(OrderedDict.items(self))

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__  # type: ignore[assignment]


class Engine:
    """Base of the level-2 engines: rule identity, compiled match/key, hooks and a clock binding.

    Subclasses implement `on_event(ev, t)` (t is the event's correlation time, already clamped for
    late events), `snapshot()`/`restore()` for restarts, and may use `_arm(deadline)` for their one
    rule timer.
    """

    kind = "engine"
    hook_names: tuple[str, ...] = ()

    def __init__(self, name: str, match: Match, key: KeyFn, hooks: Hooks | None = None) -> None:
        self.name = name
        self.match = match
        self.key = key
        self.hooks: Hooks = hooks or {}
        for h in self.hooks:
            if h not in self.hook_names:
                raise ValueError(
                    f"rule {name}: kind {self.kind} has no hook {h!r} ({', '.join(self.hook_names)})"
                )
        self.sink = Sink()
        self.clock: Clock | None = None
        # The rule's one timer, kept after it fires and set again with `Clock.reschedule`; `_armed`
        # says whether it is pending, at `_timer_at`.
        self._timer: Timer | None = None
        self._timer_at = 0.0
        self._armed = False
        # For the rule index (index.py): the event types, else hosts, the rule can match (None: any).
        self.types: frozenset[str] | None = None
        self.hosts: frozenset[str] | None = None
        # Else, when every matcher pins `source` (or `type`) by a glob: (field, test of a value).
        self.pattern: tuple[str, Callable[[str], Any]] | None = None
        # True when the rule's matchers say nothing but `type` (equal to, or in, `types`): the index
        # only hands it events of those types, so the stage need not test them again.
        self.pinned_only = False
        # What the stage tests on the events the index hands the rule: `match` less what the index
        # decided (None: nothing is left). `match` itself stays whole for `rules explain`.
        self.check: Match | None = match
        self.signature = ""  # the rule's text: a reload keeps the running engine when it is unchanged
        self.group_by: tuple[str, ...] = ()  # the key's field paths (`rules check --cluster` reads them)
        self.counters = RuleCounters()  # hits and errors; shared with GET /api/v1/rules when from a file
        self._fires = ENGINE_METRICS.fires_of(name)  # hook -> correlator_correlation_fires_total

    # -- wiring ---------------------------------------------------------------------------------
    def attach(self, clock: Clock, sink: Sink) -> None:
        """Bind to the clock the stage runs on (replay makes a new one per run) and re-arm timers."""
        self.clock = clock
        self.sink = sink
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed = False
        self.rearm()

    def detach(self) -> None:
        """The rule was removed or changed by a reload: cancel its timers, produce nothing more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed = False
        self.clock = None

    def rearm(self) -> None:
        """Subclasses with deadlines arm their earliest one here."""

    def _arm(self, when: float | None) -> None:
        if when is None or self.clock is None:
            return
        timer = self._timer
        if timer is None:
            self._timer = self.clock.call_at(when, self._on_timer)
        elif self._armed and self._timer_at <= when:
            return
        else:  # fired already, or due later than `when`: set again, as a new timer would be
            self.clock.reschedule(timer, when)
        self._armed = True
        self._timer_at = when

    def _arm_first(self, table: KeyTable[S], deadline: Callable[[S], float]) -> None:
        """Arm the rule's one timer on the oldest entry of a table kept in deadline order."""
        item = table.oldest()
        if item is not None:
            self._arm(deadline(item[1]))

    def _on_timer(self, now: float) -> None:
        self._armed = False
        if self.clock is not None:
            self.on_timer(now)

    def on_timer(self, now: float) -> None:
        pass

    # -- behaviour ------------------------------------------------------------------------------
    def on_event(self, ev: Event, t: float) -> None:
        raise NotImplementedError

    def keys(self) -> int:
        return 0

    def expire(self, now: float) -> int:
        """Forget idle keys (TTL); returns how many were dropped."""
        return 0

    def snapshot(self) -> Any:
        return None

    def restore(self, data: Any) -> None:
        pass

    def describe(self, key: Key, now: float) -> str:
        """The key's state in an operator's words, for `rules explain` ('' : not described)."""
        return ""

    def fire(self, hook: str, subject: Event, key: Key, from_timer: bool, **extra: Any) -> None:
        self._run_hook(hook, subject, key, from_timer, extra, None)

    def generate(self, hook: str, ev: Event, key: Key, from_timer: bool, **extra: Any) -> None:
        """Put a rule-made event into the output, then run the hook's actions on it."""
        self.sink.add_event(ev, from_timer)
        self._run_hook(hook, ev, key, from_timer, extra, ev)

    def _run_hook(
        self, hook: str, subject: Event, key: Key, from_timer: bool, extra: dict[str, Any], made: Event | None
    ) -> None:
        sink = self.sink
        if not sink.refeeding:  # hooks run again by the post-crash re-feed were counted the first time
            fires = self._fires
            fires[hook] = fires.get(hook, 0) + 1
        trace = sink.trace
        mark = sink.mark() if trace is not None else None
        actions = self.hooks.get(hook)
        if actions:
            f = Fire(self.name, hook, key, from_timer, extra)
            for act in actions:
                act(subject, f, sink)
        if trace is not None and mark is not None:
            events, responses = sink.since(mark)
            at = self.clock.now() if self.clock is not None else subject.time
            n = len(actions) if actions else 0
            trace.append(Fired(self.name, hook, key, at, from_timer, extra, n, made, events, responses))


def key_of(value: Any) -> Key:
    """Keys come back from JSON snapshots as lists: make them tuples again."""
    return tuple(value)
