"""Replay: feed recorded events (NDJSON) through the live pipeline on a virtual clock.

Time comes only from the events, so the same file always gives the same output: the base of
deterministic tests and of the benchmarks. Nothing is written to the event store.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from correlator.clock import Clock
from correlator.event import Event, iso
from correlator.pipeline import Pipeline, StageContext
from correlator.recording import ReadCounts, read_events
from correlator.responses import NotifyRequest, Response

if TYPE_CHECKING:
    from correlator.recording_process import Reader

WRITE_LINES = 64  # output lines joined per write: ~20 KB, below the size malloc maps on its own
APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


@dataclass
class ReplaySummary(ReadCounts):
    """What reading counted (lines, events in, invalid lines, the first errors), then the output."""

    events_out: int = 0
    by_severity: collections.Counter[str] = field(default_factory=collections.Counter)
    by_type: collections.Counter[str] = field(default_factory=collections.Counter)
    suppressed: collections.Counter[str] = field(default_factory=collections.Counter)  # by change id
    notify: list[NotifyRequest] = field(default_factory=list)  # level-2 `notify` asked (never sent)
    first_time: float | None = None
    last_time: float | None = None
    elapsed_seconds: float = 0.0
    digest: str = ""  # SHA-256 of the output events: equal digests mean identical output

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events_in": self.events_in,
            "events_out": self.events_out,
            "invalid": self.invalid,
            "errors": self.errors,
            "by_severity": dict(sorted(self.by_severity.items())),
            "top_types": dict(self.by_type.most_common(10)),
            "first_time": iso(self.first_time) if self.first_time is not None else None,
            "last_time": iso(self.last_time) if self.last_time is not None else None,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "events_per_second": round(self.events_in / self.elapsed_seconds) if self.elapsed_seconds else 0,
            "digest": self.digest,
        }


class Stepper:
    """Feeds events one at a time through a pipeline on a virtual clock (`rules test`, `rules explain`).

    Before each event the clock moves to its time, and what level-2 timers made on the way goes
    through the stages after level 2 (`Pipeline.flush`), as the live ticker stores it. Events are
    taken in the order given; one older than the clock is late, as it would be live.
    """

    def __init__(self, pipeline: Pipeline, start: float, clock: Clock | None = None) -> None:
        """`clock`: the one the pipeline's services (incidents, changes) were built on, if any."""
        self.pipeline = pipeline
        self.clock = clock or Clock(start)
        self.clock.advance_to(start)
        self.responses: list[Response] = []  # what correlation asked of the later stages, in order

    async def advance(self, t: float) -> list[Event]:
        """Move time to `t`; returns what the timers that fired made, after the later stages."""
        self.clock.advance_to(t)
        ctx = StageContext(self.clock, live=False)
        out = await self.pipeline.flush(ctx)
        self.responses.extend(ctx.responses)
        return out

    async def feed(self, ev: Event) -> list[Event]:
        """Advance to the event's time, then run it; returns the timers' events, then the pipeline's."""
        out = await self.advance(ev.time)
        ctx = StageContext(self.clock, live=False)
        out += await self.pipeline.run([ev], ctx)
        self.responses.extend(ctx.responses)
        return out


async def replay(
    path: Path,
    pipeline: Pipeline,
    output: IO[bytes] | None = None,
    progress: IO[str] | None = None,
    wait: float = 0.0,
    clock: Clock | None = None,
    reader: Reader | None = None,
) -> ReplaySummary:
    """`wait`: after the last event, let that much event time pass, so timers due by then (a pair
    never closed, a heartbeat that stopped) fire; without it the recording ends at its last event.
    `clock`: the one the pipeline's services were built on (replay_noc.py); by default a new one
    starting at the first event. `reader`: a second process already reading `path`
    (correlator/recording_process.py), which then reports the progress; by default this one reads."""
    summary = ReplaySummary()
    digest = hashlib.sha256()
    started = time.perf_counter()

    def take_notify(ctx: StageContext) -> None:
        if ctx.responses:
            summary.notify.extend(r for r in ctx.responses if isinstance(r, NotifyRequest))

    def count_suppressed(ctx: StageContext) -> None:
        # What this replay's change windows set aside (correlator/changes/stage.py, the only stage
        # that sets aside), by change: not a recorded line that already says it was suppressed
        # when it was recorded. A clear in a window is tagged but passes: never set aside.
        for e in ctx.set_aside:
            summary.suppressed[e.attributes.get("change_id") or ""] += 1

    def record(out: list[Event]) -> None:
        if not out:
            return
        # Hashed and written WRITE_LINES lines at a time: one call each instead of one per line.
        # Only that many lines are alive at once: a whole batch's lines (or one buffer of them)
        # freed together make malloc give the heap back and take it again, batch after batch
        # (measured: ten times the page faults, a tenth more CPU in the kernel).
        # `to_dict` first: the same bytes as orjson's own dataclass support, about a third cheaper.
        for i in range(0, len(out), WRITE_LINES):
            data = b"".join([dumps(e.to_dict(), option=APPEND_NEWLINE) for e in out[i : i + WRITE_LINES]])
            digest.update(data)
            if output is not None:
                output.write(data)
        # Most batches hold one severity: counted by identity (members are singletons) in one C
        # pass, and only the others by value.
        # Comprehensions, not map(attrgetter): the interpreter specialises a read in its own
        # code, where attrgetter is a call per event (measured: 155 against 340 instructions).
        severities = [e.severity for e in out]
        first = severities[0]
        n = severities.count(first)
        summary.by_severity[first.value] += n
        if n < len(severities):
            for sev, n in collections.Counter([s for s in severities if s is not first]).items():
                summary.by_severity[sev.value] += n
        summary.by_type.update([e.type for e in out])
        summary.events_out += len(out)

    dumps = orjson.dumps
    lo = hi = None
    batches = reader.batches(summary) if reader is not None else read_events(path, summary, progress)
    for batch in batches:
        # Sorted, not min() and max(): a recording is mostly in time order, and a list of floats
        # sorts with a float-only compare (measured: 36 against 312 instructions per event).
        times = [e.time for e in batch]
        times.sort()
        first, last = times[0], times[-1]
        if lo is None or first < lo:
            lo = first
        if hi is None or last > hi:
            hi = last
        if clock is None:
            clock = Clock(batch[0].time)
        ctx = StageContext(clock, live=False)
        record(await pipeline.run(batch, ctx))
        count_suppressed(ctx)
        take_notify(ctx)
    summary.first_time, summary.last_time = lo, hi
    if clock is not None and wait > 0:
        clock.advance_to(clock.now() + wait)
        ctx = StageContext(clock, live=False)
        record(await pipeline.flush(ctx))
        count_suppressed(ctx)
        take_notify(ctx)
    summary.elapsed_seconds = time.perf_counter() - started
    summary.digest = digest.hexdigest()
    return summary


def progress_stream() -> IO[str] | None:
    return sys.stderr if sys.stderr.isatty() else None
