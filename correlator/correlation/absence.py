"""absence (heartbeat): expect a matching event per key at least every T.

When a key stays silent for T, a `heartbeat.missed` event is emitted (hook `missed`); when it reports
again, a clear of it (same type, host and resource, severity clear) is emitted (hook `back`). Keys
listed in `expect` (e.g. every router of the inventory) are watched from the start even if they never
reported, and are never forgotten; other silent keys are forgotten `forget_after` after going missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from correlator.config import duration_text
from correlator.correlation.core import Engine, Hooks, Key, KeyFn, KeyTable, Match, generated_event, key_of
from correlator.event import Event, Severity, clock_time

_Seen = tuple[float, str, str]  # (last time, host, resource)


class Absence(Engine):
    kind = "absence"
    hook_names = ("missed", "back")

    def __init__(
        self,
        name: str,
        match: Match,
        key: KeyFn,
        every: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        expect: Iterable[Key] = (),
        missed_type: str = "heartbeat.missed",
        severity: Severity = Severity.MAJOR,
        forget_after: float = 7 * 86400.0,
    ) -> None:
        super().__init__(name, match, key, hooks)
        if every <= 0:
            raise ValueError(f"rule {name}: absence needs every > 0")
        self.every = every
        self.expect = frozenset(expect)
        self.missed_type = missed_type
        self.severity = severity
        self.forget_after = forget_after
        self.waiting: KeyTable[_Seen] = KeyTable(name, max_keys)
        self.missing: KeyTable[_Seen] = KeyTable(name, max_keys)  # (missed at, host, resource)
        self._started = False

    def attach(self, clock: Any, sink: Any) -> None:
        if not self._started:
            # Listed keys that have no state yet start their first period now.
            self._started = True
            now = clock.now()
            for k in sorted(self.expect, key=repr):
                if k not in self.waiting and k not in self.missing:
                    host = str(k[0]) if k else ""
                    self.waiting.put(k, (now, host, "/".join(str(p) for p in k[1:])))
        super().attach(clock, sink)

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        w = self.waiting.get(k)
        if w is not None:
            self.waiting.touch(k)
            if t > w[0]:
                self.waiting.put(k, (t, ev.host, ev.resource))
            return
        gone = self.missing.pop(k)
        self.waiting.put(k, (t, ev.host, ev.resource))
        self._arm(t + self.every)
        if gone is not None:
            clear = generated_event(
                self.name,
                "back",
                self.missed_type,
                t,
                ev.host,
                ev.resource,
                Severity.CLEAR,
                f"{ev.host} reported again after {t - gone[0]:.0f}s of silence",
                {"key": list(k), "missed_at": gone[0]},
                (k, gone[0]),
            )
            self.generate("back", clear, k, False)

    def on_timer(self, now: float) -> None:
        every = self.every
        for k, (last, host, resource) in self.waiting.pop_due(self._deadline, now):
            deadline = last + every
            self.missing.put(k, (deadline, host, resource))
            ev = generated_event(
                self.name,
                "missed",
                self.missed_type,
                deadline,
                host,
                resource,
                self.severity,
                f"no event from {host or '/'.join(map(str, k))} for {every:g}s",
                {"key": list(k), "last_seen": last},
                (k, deadline),
            )
            self.generate("missed", ev, k, True)
        self.rearm()

    def rearm(self) -> None:
        self._arm_first(self.waiting, self._deadline)

    def _deadline(self, seen: _Seen) -> float:
        return seen[0] + self.every

    def describe(self, key: Key, now: float) -> str:
        w = self.waiting.get(key)
        if w is not None:
            due = clock_time(w[0] + self.every)
            return f"absence: last seen {clock_time(w[0])}; missed if silent until {due}"
        gone = self.missing.get(key)
        if gone is not None:
            return f"absence: missing since {clock_time(gone[0])}; its next event is 'back'"
        return f"absence: not watched yet (expects an event every {duration_text(self.every)})"

    def keys(self) -> int:
        return len(self.waiting) + len(self.missing)

    def expire(self, now: float) -> int:
        n = 0
        missing = self.missing
        keep: list[tuple[Key, _Seen]] = []
        while (item := missing.oldest()) is not None and item[1][0] + self.forget_after <= now:
            missing.pop_oldest()
            if item[0] in self.expect:
                keep.append(item)
            else:
                n += 1
        for k, v in keep:  # listed keys are never forgotten: keep them missing, checked again later
            missing.put(k, (now, v[1], v[2]))
        return n

    def snapshot(self) -> Any:
        return {
            "waiting": self.waiting.dump(),
            "missing": self.missing.dump(),
        }

    def restore(self, data: Any) -> None:
        self._started = True
        for k, v in data["waiting"]:
            self.waiting.put(key_of(k), (v[0], v[1], v[2]))
        for k, v in data["missing"]:
            self.missing.put(key_of(k), (v[0], v[1], v[2]))
        for k in self.expect:  # keys added to the list since the snapshot
            if k not in self.waiting and k not in self.missing:
                self._started = False
        self.rearm()
