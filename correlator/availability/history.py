"""Outage history of one service and the figures derived from it (availability ratio, MTBF, MTRS).

Pure arithmetic on persisted outages, so the same history gives the same figures after a restart.
Time inside a planned maintenance window for the service counts neither as downtime nor as observed
time; an outage counts only once part of it lies outside maintenance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Interval = tuple[float, float]


def merge(windows: list[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of maintenance intervals."""
    out: list[Interval] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def effective(a: float, b: float, maintenance: list[Interval]) -> float:
    """Seconds of [a, b] outside the (merged) maintenance intervals."""
    if b <= a:
        return 0.0
    total = b - a
    for s, e in maintenance:
        if s >= b:
            break
        total -= max(0.0, min(b, e) - max(a, s))
    return max(total, 0.0)


@dataclass(slots=True)
class Figures:
    ratio: float  # NaN when nothing was observed yet
    downtime: float
    outages: int
    mtbf: float  # NaN without an outage in the window
    mtrs: float


@dataclass
class ServiceHistory:
    since: float  # when tracking of this service began (persisted)
    maintenance: list[Interval] = field(default_factory=list)
    recent: list[tuple[float, float | None]] = field(default_factory=list)  # (start, end or None if open)
    closed_outages: int = 0  # lifetime, outages no longer in `recent` or closed
    closed_seconds: float = 0.0

    @property
    def open_since(self) -> float | None:
        if self.recent and self.recent[-1][1] is None:
            return self.recent[-1][0]
        return None

    def start(self, at: float) -> None:
        self.recent.append((at, None))

    def end(self, at: float) -> None:
        start, _ = self.recent[-1]
        self.recent[-1] = (start, at)
        eff = effective(start, at, self.maintenance)
        if eff > 0:
            self.closed_outages += 1
            self.closed_seconds += eff

    def load_closed(self, start: float, end: float, keep: bool) -> None:
        """Add a closed outage read from the database (`keep`: still inside the longest window)."""
        if keep:
            self.recent.append((start, None))
            self.end(end)
        else:
            eff = effective(start, end, self.maintenance)
            if eff > 0:
                self.closed_outages += 1
                self.closed_seconds += eff

    def totals(self, now: float) -> tuple[int, float]:
        """Lifetime (outages, outage seconds), the open outage counted up to `now`."""
        n, secs = self.closed_outages, self.closed_seconds
        opened = self.open_since
        if opened is not None:
            eff = effective(opened, now, self.maintenance)
            if eff > 0:
                n += 1
                secs += eff
        return n, secs

    def window(self, now: float, seconds: float) -> Figures:
        lo = max(now - seconds, self.since)
        observed = effective(lo, now, self.maintenance)
        down, n = 0.0, 0
        for start, end in reversed(self.recent):
            stop = now if end is None else end
            if stop < lo:
                break
            eff = effective(max(start, lo), min(stop, now), self.maintenance)
            if eff > 0:
                down += eff
                n += 1
        if observed <= 0:
            return Figures(math.nan, down, n, math.nan, math.nan)
        ratio = max(0.0, 1.0 - down / observed)
        if n == 0:
            return Figures(ratio, down, 0, math.nan, math.nan)
        return Figures(ratio, down, n, (observed - down) / n, down / n)

    def prune(self, before: float) -> None:
        """Forget closed outages that ended before `before` (they stay in the lifetime totals)."""
        keep = 0
        while keep < len(self.recent) and (end := self.recent[keep][1]) is not None and end < before:
            keep += 1
        if keep:
            del self.recent[:keep]
