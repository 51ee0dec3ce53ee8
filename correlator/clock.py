"""Time for correlation: one clock object with timers, driven by wall time live and by event time in replay.

Windows and timeouts never read `time.time()` directly; they ask the clock, so replay and tests are
exact and need no sleeps.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Timer:
    when: float
    seq: int
    callback: Callable[[float], None]
    cancelled: bool = False
    # The heap entry standing for the timer: (`entry_when`, `entry_seq`); -1: none (fired, or new).
    # A timer moved later keeps its entry, which puts it back at (when, seq) when it comes up.
    entry_when: float = 0.0
    entry_seq: int = -1

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A monotonic clock whose time only moves when `advance_to` is called.

    Due timers run in time order, and `now()` reads the timer's own deadline while its callback
    runs, so a timeout fires at exactly the time it was due whatever the driver's granularity.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.time = start  # what now() returns
        # (when, seq, timer): the heap compares the tuples in C (a Python __lt__ per comparison
        # was a tenth of level 2's time); seq keeps equal deadlines in the order they were set.
        # Public, like `time`, for a driver moving time per event (the correlate stage): when the
        # heap is empty or heap[0][0] > t, no timer is due by t, and `time = t` is all that
        # advance_to(t) would do, without its call (a tenth of level 2 at 100,000 events/s).
        # Stale entries only make heap[0][0] earlier: the check never misses a due timer.
        self.heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[float], None]) -> Timer:
        seq = next(self._seq)
        timer = Timer(when, seq, callback, False, when, seq)
        heapq.heappush(self.heap, (when, seq, timer))
        return timer

    def reschedule(self, timer: Timer, when: float) -> None:
        """Move `timer` to `when`, as `cancel()` and a new `call_at` would (it fires after the timers
        already set for that time), without making a new timer.

        Moved later, the timer keeps its heap entry, which re-queues it at (when, seq) when it comes
        up: the order is that of a new timer (seq is taken now), and a timer pushed back on every
        event (a flapping key) costs no heap operation. Moved earlier, it gets a new entry and the
        old one goes stale."""
        seq = next(self._seq)
        timer.when = when
        timer.seq = seq
        timer.cancelled = False
        if timer.entry_seq >= 0 and timer.entry_when <= when:
            return
        timer.entry_when = when
        timer.entry_seq = seq
        heapq.heappush(self.heap, (when, seq, timer))

    def pending(self) -> int:
        return sum(1 for _, seq, t in self.heap if not t.cancelled and t.entry_seq == seq)

    def next_deadline(self) -> float | None:
        timers = self.heap
        while timers:
            when, seq, timer = timers[0]
            if timer.entry_seq != seq or timer.cancelled:  # stale, or cancelled: drop it
                heapq.heappop(timers)
                if timer.entry_seq == seq:
                    timer.entry_seq = -1
            elif timer.seq != seq:  # moved later: put it where it now belongs
                heapq.heapreplace(timers, (timer.when, timer.seq, timer))
                timer.entry_when = timer.when
                timer.entry_seq = timer.seq
            else:
                return when
        return None

    def advance_to(self, t: float) -> int:
        """Move time forward to `t` (never backward), firing due timers; returns how many fired."""
        fired = 0
        timers = self.heap
        while timers and timers[0][0] <= t:
            _, seq, timer = heapq.heappop(timers)
            if timer.entry_seq != seq:  # stale: the timer was moved earlier, to another entry
                continue
            if timer.cancelled:
                timer.entry_seq = -1
                continue
            if timer.seq != seq:  # moved later: queue it at its new place, in its order
                heapq.heappush(timers, (timer.when, timer.seq, timer))
                timer.entry_when = timer.when
                timer.entry_seq = timer.seq
                continue
            timer.entry_seq = -1
            self.time = max(self.time, timer.when)
            timer.callback(self.time)
            fired += 1
        if t > self.time:
            self.time = t
        return fired


def wall_clock() -> Clock:
    """A clock starting at the current wall time; the daemon's ticker advances it every second."""
    return Clock(time.time())
