"""threshold: N matching events per key within a sliding window fire once, then stay quiet.

Semantics of SEC's SingleWithThreshold, on event time: the window starts at the oldest counted event
and slides forward (oldest events drop out) until N events fit within `within` seconds; then the
`fire` hook runs once, on the N-th event, and the key stays quiet until `within` seconds after the
first of those N events. The next matching event after that starts a new count.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from correlator.config import duration_text
from correlator.correlation.core import Engine, Hooks, Key, KeyFn, KeyTable, Match, key_of
from correlator.event import Event, clock_time


@dataclass(slots=True)  # slots: small per key; dataclass: orjson writes snapshots of it natively
class _Window:
    times: list[float]
    quiet_until: float
    last: float


# A key's state: the time of its first event alone (a number), or a _Window from its second event on. With
# many rules most keys see one event in a window; a float is all that event needs to leave behind
# (no window object and list made, or read back from memory, per new key).
_State = _Window | float


def _window(state: _State) -> _Window:
    return state if isinstance(state, _Window) else _Window([state], 0.0, state)


def _last(state: _State) -> float:
    return state.last if isinstance(state, _Window) else state


class Threshold(Engine):
    kind = "threshold"
    hook_names = ("fire",)

    def __init__(
        self,
        name: str,
        match: Match,
        key: KeyFn,
        count: int,
        within: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
    ) -> None:
        super().__init__(name, match, key, hooks)
        if count < 1 or within <= 0:
            raise ValueError(f"rule {name}: threshold needs count >= 1 and within > 0")
        self.count = count
        self.within = within
        self.table: KeyTable[_State] = KeyTable(name, max_keys)

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        table = self.table
        w = table.get(k)
        if w is None:  # a new key (most, with many rules): its first event, nothing to slide
            if self.count > 1:
                table[k] = t  # `put`, inline: a Python call per new key was a tenth of this method
                if len(table) > table.max_keys:
                    table.evict_oldest()
                return
            # `put` then `_fired`, inline: its first event fires it (count 1, most alert rules), so
            # its window starts out quiet and empty, as `_fired` leaves it
            table[k] = _Window([], t + self.within, t)
            if len(table) > table.max_keys:
                table.evict_oldest()
            self._run_hook("fire", ev, k, False, {"count": 1, "first": t}, None)
            return
        table.touch(k)
        if w.__class__ is not _Window:  # its second event: now it needs a window (no isinstance call)
            w = table[k] = _Window([w], 0.0, w)  # type: ignore[list-item,arg-type]
        elif w.quiet_until:  # (a new window is never quiet)
            if t < w.quiet_until:
                w.last = t
                return
            w.quiet_until = 0.0
        if t > w.last:
            w.last = t
        times = w.times
        if not times or t >= times[-1]:
            times.append(t)
        else:  # out of order within the allowed lateness: count it at its own time
            bisect.insort(times, t)
        oldest_allowed = times[-1] - self.within
        while times[0] < oldest_allowed:
            del times[0]
        if len(times) >= self.count:
            self._fired(ev, k, w, times[0])

    def _fired(self, ev: Event, k: Key, w: _Window, first: float) -> None:
        w.quiet_until = first + self.within
        w.times.clear()
        # `_run_hook`, not `fire`: no keyword arguments packed and unpacked on the way
        self._run_hook("fire", ev, k, False, {"count": self.count, "first": first}, None)

    def describe(self, key: Key, now: float) -> str:
        state = self.table.get(key)
        w = _window(state) if state is not None else None
        if w is not None and w.quiet_until > now:
            return f"threshold: fired; quiet until {clock_time(w.quiet_until)}, then a new count starts"
        times = [x for x in w.times if x >= now - self.within] if w is not None else []
        since = f" (counting since {clock_time(times[0])})" if times else ""
        return f"threshold: {len(times)} of {self.count} within {duration_text(self.within)}{since}"

    def keys(self) -> int:
        return len(self.table)

    def expire(self, now: float) -> int:
        n = 0
        table = self.table
        while (item := table.oldest()) is not None and _last(item[1]) + self.within <= now:
            table.pop_oldest()
            n += 1
        return n

    def snapshot(self) -> Any:
        return [(k, _window(state)) for k, state in self.table.dump()]

    def restore(self, data: Any) -> None:
        for k, w in data:
            self.table.put(key_of(k), _Window(**w))
