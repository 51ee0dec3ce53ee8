"""sequence: events matching steps A, B, C... arrive for the same key in that order within T.

The first step starts a run for the key; each next step must match in order (events matching other
steps are ignored, they neither advance nor reset the run). When the last step arrives within
`within` of the first, hook `complete` fires on it. A run older than `within` is dropped; an A
arriving then starts a new one. A repeated A during a run does not restart it.

With hook `timeout`, a run that has not completed at first + `within` ends there instead: a
`<rule>.timeout` event (`timeout_type`) is emitted at exactly that time, made from the run's last
event (host, resource, severity unless `severity` is set), saying which steps it reached and which
one it was missing.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any

from correlator.correlation.core import Engine, Hooks, Key, KeyFn, KeyTable, Match, generated_event, key_of
from correlator.event import Event, Severity, clock_time


@dataclass(slots=True)  # slots: small per key; dataclass: orjson writes snapshots of it natively
class _Run:
    start: float
    step: int  # index of the next step expected
    ids: list[str]
    # Of the run's last event: what a timeout event is about. Defaults: snapshots from before them.
    host: str = ""
    resource: str = ""
    severity: str = "info"


class SequenceRule(Engine):
    kind = "sequence"
    hook_names = ("complete", "timeout")

    def __init__(
        self,
        name: str,
        steps: Seq[Match],
        key: KeyFn,
        within: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        timeout_type: str | None = None,
        severity: Severity | None = None,
        step_texts: Seq[str] = (),
    ) -> None:
        if len(steps) < 2:
            raise ValueError(f"rule {name}: a sequence needs at least two steps")
        if within <= 0:
            raise ValueError(f"rule {name}: sequence needs within > 0")
        if step_texts and len(step_texts) != len(steps):
            raise ValueError(f"rule {name}: one text per step")
        steps = tuple(steps)
        super().__init__(name, lambda e: any(m(e) for m in steps), key, hooks)
        self.steps = steps
        self.within = within
        self.timeout_type = timeout_type or f"{name}.timeout"
        self.severity = severity  # of the timeout event; None: the run's last event's
        self.step_texts = tuple(step_texts) or tuple(f"step {i + 1}" for i in range(len(steps)))
        # With timeouts the table stays in start (= deadline) order for the one rule timer; without,
        # a run is touched on every event of its key, so eviction takes the least recently active.
        self.timeouts = "timeout" in self.hooks
        self.table: KeyTable[_Run] = KeyTable(name, max_keys)

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        run = self.table.get(k)
        if run is not None and t - run.start > self.within:
            self.table.pop(k)
            if self.timeouts:
                # Past its deadline before the timer reached it: a run started by an out-of-order
                # event sits behind later deadlines in the table.
                self._timeout(k, run, False)
            run = None
        if run is None:
            if self.steps[0](ev):
                self.table.put(k, _Run(t, 1, [ev.id], ev.host, ev.resource, ev.severity.value))
                if self.timeouts:
                    self._arm(t + self.within)
            return
        if not self.timeouts:
            self.table.touch(k)
        if not self.steps[run.step](ev):
            return
        run.ids.append(ev.id)
        run.step += 1
        run.host, run.resource, run.severity = ev.host, ev.resource, ev.severity.value
        if run.step == len(self.steps):
            self.table.pop(k)
            self.fire("complete", ev, k, False, steps=list(run.ids), elapsed=t - run.start)

    def on_timer(self, now: float) -> None:
        for k, run in self.table.pop_due(self._deadline, now):
            self._timeout(k, run, True)
        self.rearm()

    def _timeout(self, k: Key, run: _Run, from_timer: bool) -> None:
        deadline = self._deadline(run)
        missing = self.step_texts[run.step]
        found = {"steps": list(run.ids), "reached": run.step, "missing": missing}
        ev = generated_event(
            self.name,
            "timeout",
            self.timeout_type,
            deadline,
            run.host,
            run.resource,
            self.severity or Severity(run.severity),
            f"sequence stopped after step {run.step} of {len(self.steps)}: "
            f"no {missing} within {self.within:g}s",
            {"key": list(k), "started_at": run.start, **found},
            (k, run.ids[0]),
        )
        self.generate("timeout", ev, k, from_timer, **found)

    def _deadline(self, run: _Run) -> float:
        return run.start + self.within

    def rearm(self) -> None:
        if self.timeouts:
            self._arm_first(self.table, self._deadline)

    def describe(self, key: Key, now: float) -> str:
        run = self.table.get(key)
        n = len(self.steps)
        if run is None or now - run.start > self.within:
            return f"sequence: waiting for {self.step_texts[0]} (step 1 of {n})"
        due = f"{self.step_texts[run.step]} due by {clock_time(self._deadline(run))}"
        return f"sequence: step {run.step} of {n} done; {due}"

    def keys(self) -> int:
        return len(self.table)

    def expire(self, now: float) -> int:
        if self.timeouts:
            return 0  # the rule timer ends every run at its deadline, with its timeout
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
        self.rearm()
