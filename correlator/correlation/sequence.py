"""sequence: events matching steps A, B, C... arrive for the same key in that order within T.

The first step starts a run for the key; each next step must match in order (events matching other
steps are ignored, they neither advance nor reset the run). When the last step arrives within
`within` of the first, hook `complete` fires on it. A run older than `within` is dropped; an A
arriving then starts a new run. A repeated A during a run does not restart it.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any

from correlator.correlation.core import Engine, Hooks, Key, KeyFn, KeyTable, Match, key_of
from correlator.event import Event, clock_time


@dataclass(slots=True)  # slots: small per key; dataclass: orjson writes snapshots of it natively
class _Run:
    start: float
    step: int  # index of the next step expected
    ids: list[str]


class SequenceRule(Engine):
    kind = "sequence"
    hook_names = ("complete",)

    def __init__(
        self,
        name: str,
        steps: Seq[Match],
        key: KeyFn,
        within: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
    ) -> None:
        if len(steps) < 2:
            raise ValueError(f"rule {name}: a sequence needs at least two steps")
        if within <= 0:
            raise ValueError(f"rule {name}: sequence needs within > 0")
        steps = tuple(steps)
        super().__init__(name, lambda e: any(m(e) for m in steps), key, hooks)
        self.steps = steps
        self.within = within
        self.table: KeyTable[_Run] = KeyTable(name, max_keys)

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        run = self.table.get(k)
        if run is not None and t - run.start > self.within:
            self.table.pop(k)
            run = None
        if run is None:
            if self.steps[0](ev):
                self.table.put(k, _Run(t, 1, [ev.id]))
            return
        self.table.touch(k)
        if not self.steps[run.step](ev):
            return
        run.ids.append(ev.id)
        run.step += 1
        if run.step == len(self.steps):
            self.table.pop(k)
            self.fire("complete", ev, k, False, steps=list(run.ids), elapsed=t - run.start)

    def describe(self, key: Key, now: float) -> str:
        run = self.table.get(key)
        n = len(self.steps)
        if run is None or now - run.start > self.within:
            return f"sequence: waiting for step 1 of {n}"
        until = clock_time(run.start + self.within)
        return f"sequence: step {run.step} of {n} done, the rest due by {until}"

    def keys(self) -> int:
        return len(self.table)

    def expire(self, now: float) -> int:
        # Runs are touched on progress, so the oldest-touched run is not always the oldest started;
        # scanning from the front and stopping at the first live run keeps this cheap and still bounded.
        n = 0
        while (item := self.table.oldest()) is not None and item[1].start + self.within < now:
            self.table.pop_oldest()
            n += 1
        return n

    def snapshot(self) -> Any:
        return self.table.dump()

    def restore(self, data: Any) -> None:
        for k, r in data:
            self.table.put(key_of(k), _Run(**r))
