"""The level-1 steps with state: de-duplication and rate limiting, in windows of event time.

Both keep per-key state bounded by MAX_KEYS; de-duplication also reads the rule set's shared table
of the latest condition per host and resource (`Conditions`), which the rule set updates per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.event import Event, Severity

MAX_KEYS = 100_000  # per stateful rule (dedup / rate_limit): bounds memory whatever the key cardinality


class Conditions:
    """The latest condition (fingerprint, severity) kept per (host, resource), across all rules.

    De-duplication asks it whether anything else happened on the same host and resource since the
    first occurrence: linkDown, linkUp, linkDown is three transitions, not a repeat, and level 2
    (flapping, pairs, thresholds) must see all three.
    """

    def __init__(self) -> None:
        # The severity is kept as the enum member (a str): it compares as its text in C, where
        # `.value` is a Python-level property read twice per event.
        self.latest: dict[tuple[str, str], tuple[str, Severity]] = {}

    def observe(self, ev: Event) -> None:
        key = (ev.host, ev.resource)
        if len(self.latest) >= MAX_KEYS and key not in self.latest:
            self.latest.clear()  # a bound, not an LRU: at worst one repeat per key is not folded
        self.latest[key] = (ev.fingerprint, ev.severity)

    def unchanged(self, ev: Event) -> bool:
        last = self.latest.get((ev.host, ev.resource))
        return last is None or last == (ev.fingerprint, ev.severity)


class Deduper:
    """Folds repeats of a key (and severity) within `window` of the first occurrence into that event.

    The kept event's count and last_seen grow; it is appended to `updates` so the store rewrites it,
    and the repeat is removed as a "duplicate" (the filter stage hands it to the store too, which
    keeps its id: see RuleSet.run).
    A severity change never folds (a clear after a major is news, not a repeat), and neither does a
    repeat after another condition on the same host and resource (see `Conditions`).
    """

    __slots__ = ("conditions", "key", "latest", "next_sweep", "signature", "state", "transitions", "window")

    def __init__(self, key: Callable[[Event], str], window: float, transitions: bool = True) -> None:
        self.key = key
        self.window = window
        # With an explicit key the operator has said what counts as the same; only the default
        # (fingerprint) key ends a burst when another condition occurs on the host and resource.
        self.transitions = transitions
        self.conditions = Conditions()  # replaced by the rule set's shared one
        self.state: dict[tuple[str, str], Event] = {}
        self.latest = 0.0
        self.next_sweep = 0.0
        self.signature: tuple[Any, ...] = ()

    def __call__(self, ev: Event, updates: list[Event]) -> str | None:
        t = ev.time
        if t > self.latest:
            self.latest = t
            # Expired entries go once per window of event time (or when full), so memory follows
            # the keys active in the last window, not all keys ever seen.
            if t >= self.next_sweep or len(self.state) >= MAX_KEYS:
                self._sweep()
                self.next_sweep = t + self.window
        k = (self.key(ev), ev.severity)  # the member: equal to and hashed as its text, no property call
        state = self.state
        first = state.get(k)
        if first is not None and first is not ev and abs(t - first.time) < self.window:
            # Conditions.unchanged, inline: no later condition on the host and resource
            last = self.conditions.latest.get((ev.host, ev.resource)) if self.transitions else None
            if last is None or last == (ev.fingerprint, ev.severity):
                first.count += ev.count
                if ev.last_seen > first.last_seen:
                    first.last_seen = ev.last_seen
                updates.append(first)
                return "duplicate"
        if len(state) < MAX_KEYS:
            state[k] = ev
        return None

    def _sweep(self) -> None:
        horizon = self.latest - self.window
        self.state = {k: e for k, e in self.state.items() if e.time > horizon}


class RateLimiter:
    """At most `max` events per key in fixed windows of `per` seconds (event time); the rest are dropped."""

    __slots__ = ("key", "latest", "limit", "next_sweep", "per", "signature", "state")

    def __init__(self, key: Callable[[Event], str], limit: int, per: float) -> None:
        self.key = key
        self.limit = limit
        self.per = per
        self.state: dict[str, list[float]] = {}  # key -> [window start, events seen]
        self.latest = 0.0
        self.next_sweep = 0.0
        self.signature: tuple[Any, ...] = ()

    def __call__(self, ev: Event, updates: list[Event]) -> str | None:
        t = ev.time
        if t > self.latest:
            self.latest = t
            if t >= self.next_sweep or len(self.state) >= MAX_KEYS:
                horizon = t - self.per
                self.state = {k: s for k, s in self.state.items() if s[0] > horizon}
                self.next_sweep = t + self.per
        k = self.key(ev)
        s = self.state.get(k)
        if s is None or not s[0] <= t < s[0] + self.per:
            if s is not None or len(self.state) < MAX_KEYS:
                self.state[k] = [t, 1]
            return None
        s[1] += 1
        return "rate_limit" if s[1] > self.limit else None
