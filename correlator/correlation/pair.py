"""pair: event A opens, event B with the same key closes within T (SEC's PairWithWindow).

Hooks: `open` on the first A of a key, `close` on B within T (a blip: linkDown then linkUp within
30 s), `timeout` when T passes without B (a rule-made `<rule>.timeout` event is emitted; typical
action: open an incident), `recover` when B arrives after the timeout (typical: resolve it).
Repeated A while the pair is pending is ignored, as in SEC.
"""

from __future__ import annotations

from typing import Any

from correlator.config import duration_text
from correlator.correlation.core import Engine, Hooks, Key, KeyFn, KeyTable, Match, generated_event, key_of
from correlator.event import Event, Severity, clock_time

# pending A: (id, time, host, resource, type, severity, deadline) - a tuple keeps a key under 1 KiB
_Open = tuple[str, float, str, str, str, str, float]


_SEVERITY = {s.value: s for s in Severity}  # a dict lookup: cheaper than calling the enum


def _deadline(a: _Open) -> float:
    return a[6]


class Pair(Engine):
    kind = "pair"
    hook_names = ("open", "close", "timeout", "recover")

    def __init__(
        self,
        name: str,
        match: Match,
        close: Match,
        key: KeyFn,
        within: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        timeout_type: str | None = None,
        recover_within: float = 86400.0,
        close_types: frozenset[str] | None = None,
    ) -> None:
        """`close_types`: when the `close` matcher tests nothing but the type, the types it accepts
        (a set lookup instead of a matcher call per event)."""
        super().__init__(name, lambda e: match(e) or close(e), key, hooks)
        if within <= 0:
            raise ValueError(f"rule {name}: pair needs within > 0")
        self.match_open = match
        self.match_close = close
        self.close_types = close_types
        self.within = within
        self.timeout_type = timeout_type or f"{name}.timeout"
        self.recover_within = recover_within
        self.pending: KeyTable[_Open] = KeyTable(name, max_keys)
        self.timed_out: KeyTable[float] = KeyTable(name, max_keys)  # key -> timeout time

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        close_types = self.close_types
        if ev.type in close_types if close_types is not None else self.match_close(ev):
            self._close(ev, t, k)
            return
        if k in self.pending:
            return
        self.timed_out.pop(k)
        deadline = t + self.within
        self.pending.put(k, (ev.id, t, ev.host, ev.resource, ev.type, ev.severity._value_, deadline))
        self._arm(deadline)
        self._run_hook("open", ev, k, False, {}, None)  # `fire` without its keyword packing

    def _close(self, ev: Event, t: float, k: Key) -> None:
        a = self.pending.get(k)
        if a is not None:
            if t < a[6]:  # at the deadline itself the timer has fired first (replay, tests)
                self.pending.pop(k)
                self.fire("close", ev, k, False, opened_by=a[0], elapsed=t - a[1])
                return
            # B is past the deadline but the timer has not run yet (live clock granularity).
            self.pending.pop(k)
            self._timeout(k, a, False)
        if self.timed_out.pop(k) is not None:
            self.fire("recover", ev, k, False)

    def on_timer(self, now: float) -> None:
        for k, a in self.pending.pop_due(_deadline, now):
            self._timeout(k, a, True)
        self.rearm()

    def _timeout(self, k: Key, a: _Open, from_timer: bool) -> None:
        a_id, a_time, host, resource, a_type, sev, deadline = a
        self.timed_out.put(k, deadline)
        ev = generated_event(
            self.name,
            "timeout",
            self.timeout_type,
            deadline,
            host,
            resource,
            _SEVERITY[sev],
            f"{a_type} not closed within {self.within:g}s",
            {"key": list(k), "opened_by": a_id, "opened_at": a_time},
            (k, a_id),
        )
        self.generate("timeout", ev, k, from_timer, opened_by=a_id)

    def rearm(self) -> None:
        self._arm_first(self.pending, _deadline)

    def describe(self, key: Key, now: float) -> str:
        a = self.pending.get(key)
        if a is not None:
            return f"pair: opened {clock_time(a[1])}, waiting for the close until {clock_time(a[6])}"
        gone = self.timed_out.get(key)
        if gone is not None:
            late = duration_text(self.recover_within)
            return f"pair: timed out at {clock_time(gone)}; a close within {late} after that recovers it"
        return "pair: nothing open"

    def keys(self) -> int:
        return len(self.pending) + len(self.timed_out)

    def expire(self, now: float) -> int:
        n = 0
        while (item := self.timed_out.oldest()) is not None and item[1] + self.recover_within <= now:
            self.timed_out.pop_oldest()
            n += 1
        return n

    def snapshot(self) -> Any:
        return {
            "pending": self.pending.dump(),
            "timed_out": self.timed_out.dump(),
        }

    def restore(self, data: Any) -> None:
        for k, a in data["pending"]:
            self.pending.put(key_of(k), tuple(a))
        for k, t in data["timed_out"]:
            self.timed_out.put(key_of(k), t)
        self.rearm()
