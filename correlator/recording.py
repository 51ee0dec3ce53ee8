"""Recordings: NDJSON files of events, one per line, read into events as the door would take them.

Replay (correlator/replay.py) reads them, in this process or in a second one
(correlator/recording_process.py); `rules explain` parses a file of events the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from correlator import door
from correlator.errors import FieldError
from correlator.event import Event, full_event_from_dict, plain_event

BATCH = 1000
_LINE_ID = hashlib.blake2b(digest_size=16)  # copied for each id derived from a line


@dataclass
class ReadCounts:
    """What reading a recording counted: a replay's report starts with these."""

    lines: int = 0
    events_in: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, as file:line: message


def read_events(
    path: Path, summary: ReadCounts, progress: IO[str] | None, opened: IO[bytes] | None = None
) -> Iterator[list[Event]]:
    """Parse the file line by line into batches of up to BATCH events; ids missing from the file are
    derived from the line, not random. Counts lines, events and invalid lines into `summary`.
    `opened`: the file already open (it is closed at the end); `path` then only names it."""
    f = path.open("rb") if opened is None else opened
    size = os.fstat(f.fileno()).st_size or 1
    done = 0
    shown = -1
    lineno = 0
    limit = BATCH
    batch: list[Event] = []
    loads = orjson.loads
    with f:
        for line in f:
            lineno += 1
            if progress is not None:
                done += len(line)
                if (pct := done * 100 // size) != shown:
                    shown = pct
                    bar = "#" * (pct // 4)
                    progress.write(f"\r[{bar:<25}] {pct:3d}% {summary.events_in + len(batch)} events")
                    progress.flush()
            try:
                batch.append(recorded_event(loads(line), lineno, line, "replay", 0.0))
            except (orjson.JSONDecodeError, FieldError) as e:
                if not line.strip():  # a blank line is no event, and no error
                    continue
                summary.invalid += 1
                if len(summary.errors) < 10:
                    summary.errors.append(f"{path}:{lineno}: {e}")
                continue
            if len(batch) >= limit:
                summary.lines = lineno
                summary.events_in += len(batch)
                yield batch
                batch = []
    summary.lines = lineno
    if batch:
        summary.events_in += len(batch)
        yield batch
    if progress is not None:
        progress.write("\n")


def first_time(path: Path) -> float | None:
    """The time of the recording's first valid event (None: it has none): where the clock starts."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    return recorded_event(orjson.loads(line), lineno, line, "replay", 0.0).time
                except (orjson.JSONDecodeError, FieldError):
                    continue
    return None


def recorded_event(doc: Any, n: int, text: bytes, source: str, default_time: float) -> Event:
    """One event of a recording (the `n`-th, read from `text`). A missing or null id is derived from `n` and
    the text, not random, so the same file always gives the same ids and so the same rule-made ids."""
    if isinstance(doc, dict) and doc.get("id") is None:
        # The hash of `n:` and the text, from a copy of a prepared hash: cheaper than making one
        # with its options and joining the two (the same digest).
        h = _LINE_ID.copy()
        h.update(b"%d:" % n)
        h.update(text)
        doc["id"] = h.hexdigest()
    # A line of the common shape (generic fields only) in one pass; any other, and every refusal,
    # the long way. Either way a recorded event without `received` was received at its own time.
    ev = plain_event(doc, source, default_time) if type(doc) is dict else None
    if ev is not None:
        # A plain event's time is a float from 0 to the year 3000, and with no `received` in its
        # line (a field plain_event refuses) its three times are that one: the door below would
        # only judge the text, so a plain text needs no door.
        ev.received = ev.time
        plain = door.plain_json(text)
        if plain:
            return ev
    else:
        ev = full_event_from_dict(doc, source, default_time, recorded=True)
        if "received" not in doc:
            ev.received = ev.time
        plain = door.plain_json(text)
    # The door, as at ingest, but not its time policy: that is counted from now, and a recording is
    # old by nature. A time outside the years 1 to 9999 is still refused (no output renders it).
    # Refused is a FieldError: reported as an invalid line. `text` is what orjson parsed `doc` from.
    door.check(ev, check_time=False, typed=True, plain=plain)
    return ev


def parse_events(raw: bytes, name: str, source: str, default_time: float) -> list[Event]:
    """A whole input of events: one JSON object, a JSON array of them, or NDJSON (one per line).

    Raises ValueError naming `name` and the line (NDJSON) or item (array) at fault.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _ndjson(raw, name, source, default_time)
    items = doc if isinstance(doc, list) else [doc]
    events = []
    for n, d in enumerate(items, start=1):
        try:
            events.append(recorded_event(d, n, orjson.dumps(d), source, default_time))
        except FieldError as e:
            raise ValueError(f"{name}: item {n}: {e}" if isinstance(doc, list) else f"{name}: {e}") from None
    return events


def _ndjson(raw: bytes, name: str, source: str, default_time: float) -> list[Event]:
    events = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(recorded_event(orjson.loads(line), n, line, source, default_time))
        except (orjson.JSONDecodeError, FieldError) as e:
            raise ValueError(f"{name}:{n}: {e}") from None
    return events
