"""flapping: too many state changes per key within T; hysteresis to leave, as Nagios does.

A state change is a matching event whose `state` (default: severity) differs from the key's previous
one. With at least `high` changes within `within` seconds the key enters flapping: one `<type>` event
is emitted (hook `start`) and every matching event of the key is suppressed while it flaps. It leaves
when the changes within the window fall to `low` or fewer (checked on events and by a timer, so a
key that went quiet leaves too): a clear of the flapping event is emitted (hook `stop`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from correlator.clock import Timer
from correlator.config import duration_text
from correlator.correlation.actions import SUPPRESSED_BY, mark_suppressed
from correlator.correlation.core import (
    Engine,
    Hooks,
    Key,
    KeyFn,
    KeyTable,
    Match,
    generated_event,
    key_of,
)
from correlator.event import Event, Severity, clock_time


class _Flap:
    __slots__ = ("changes", "flapping", "host", "last", "resource", "since", "state", "timer")

    def __init__(self, state: Any, t: float, host: str, resource: str) -> None:
        self.state = state
        self.changes: list[float] = []
        self.flapping = False
        self.since = 0.0
        self.last = t
        self.host = host
        self.resource = resource
        self.timer: Timer | None = None


def severity_state(ev: Event) -> Any:
    return ev.severity.value


class Flapping(Engine):
    kind = "flapping"
    hook_names = ("start", "stop")

    def __init__(
        self,
        name: str,
        match: Match,
        key: KeyFn,
        within: float,
        high: int,
        low: int | None = None,
        state: Callable[[Event], Any] = severity_state,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        flapping_type: str = "flapping",
        severity: Severity = Severity.WARNING,
    ) -> None:
        super().__init__(name, match, key, hooks)
        low = high // 2 if low is None else low
        if within <= 0 or high < 2 or not 0 <= low < high:
            raise ValueError(f"rule {name}: flapping needs within > 0, high >= 2 and 0 <= low < high")
        self.within = within
        self.high = high
        self.low = low
        self.state = state
        self.flapping_type = flapping_type
        self.severity = severity
        self.table: KeyTable[_Flap] = KeyTable(name, max_keys)
        self._suppressed = SUPPRESSED_BY(name)  # correlator_correlation_suppressed_total{rule}

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        s = self.state(ev)
        f = self.table.get(k)
        if f is None:
            self.table.put(k, _Flap(s, t, ev.host, ev.resource))
            return
        self.table.touch(k)
        if t > f.last:
            f.last = t
        changes = f.changes
        if s != f.state:
            f.state = s
            if not changes or t >= changes[-1]:
                changes.append(t)
            else:
                bisect.insort(changes, t)
        horizon = f.last - self.within
        if changes and changes[0] <= horizon:
            _prune(changes, horizon)
        n = len(changes)
        if not f.flapping:
            if n >= self.high:
                f.flapping = True
                f.since = t
                start = self._event(
                    k, f, "start", t, self.severity, f"flapping: {n} state changes within {self.within:g}s"
                )
                self.generate("start", start, k, False, changes=n)
                mark_suppressed(ev, self.name, self.sink, self._suppressed)
                self._schedule(k, f)
            return
        if n <= self.low:
            self._leave(k, f, t, False)
            return
        mark_suppressed(ev, self.name, self.sink, self._suppressed)
        self._schedule(k, f)

    def _schedule(self, k: Key, f: _Flap) -> None:
        """Check again when enough changes will have aged out of the window to reach `low`.

        The key keeps one timer, moved on every suppressed event (`Clock.reschedule`: the same order
        as a new timer, without making one)."""
        clock = self.clock
        if clock is None:
            return
        changes = f.changes
        idx = len(changes) - self.low - 1
        when = (changes[idx] if idx >= 0 else f.last) + self.within
        timer = f.timer
        if timer is None:
            f.timer = clock.call_at(when, lambda now: self._check(k, now))
        else:
            clock.reschedule(timer, when)

    def _check(self, k: Key, now: float) -> None:
        f = self.table.get(k)
        if f is None or not f.flapping or self.clock is None:
            return
        f.timer = None
        _prune(f.changes, now - self.within)
        if len(f.changes) <= self.low:
            self._leave(k, f, now, True)
        else:
            self._schedule(k, f)

    def _leave(self, k: Key, f: _Flap, t: float, from_timer: bool) -> None:
        f.flapping = False
        if f.timer is not None:
            f.timer.cancel()
            f.timer = None
        stop = self._event(k, f, "stop", t, Severity.CLEAR, f"stopped flapping; state is now {f.state}")
        self.generate("stop", stop, k, from_timer, state=f.state)

    def _event(self, k: Key, f: _Flap, hook: str, t: float, sev: Severity, msg: str) -> Event:
        info = {"key": list(k), "state": f.state, "changes": len(f.changes), "since": f.since}
        return generated_event(
            self.name, hook, self.flapping_type, t, f.host, f.resource, sev, msg, info, (k, f.since)
        )

    def rearm(self) -> None:
        for k, f in self.table.items():
            if f.flapping:
                f.timer = None
                self._schedule(k, f)

    def describe(self, key: Key, now: float) -> str:
        f = self.table.get(key)
        window = duration_text(self.within)
        if f is None:
            return f"flapping: no state yet (flaps at {self.high} changes in {window})"
        n = sum(1 for c in f.changes if c > now - self.within)
        changes = f"{n} change{'' if n == 1 else 's'} in {window}, state {f.state}"
        if f.flapping:
            return f"flapping: since {clock_time(f.since)}, {changes} (stops at {self.low} or fewer)"
        return f"flapping: {changes} (flaps at {self.high})"

    def keys(self) -> int:
        return len(self.table)

    def expire(self, now: float) -> int:
        n = 0
        table = self.table
        while (item := table.oldest()) is not None and item[1].last + self.within <= now:
            if item[1].flapping:  # a flapping key leaves through its timer, never by TTL
                table.touch(item[0])
                break
            table.pop_oldest()
            n += 1
        return n

    def snapshot(self) -> Any:
        return [
            (k, f.state, f.changes, f.flapping, f.since, f.last, f.host, f.resource)
            for k, f in self.table.dump()
        ]

    def restore(self, data: Any) -> None:
        for k, state, changes, flapping, since, last, host, resource in data:
            f = _Flap(state, last, host, resource)
            f.changes = list(changes)
            f.flapping = flapping
            f.since = since
            self.table.put(key_of(k), f)


def _prune(changes: list[float], horizon: float) -> None:
    """Changes age out exactly `within` after they happened (so a timer set then always progresses)."""
    while changes and changes[0] <= horizon:
        del changes[0]
