"""Level-2 state across restarts: open windows, pending pairs, heartbeat deadlines, groups, flaps.

The daemon saves the correlate stage's state to `<data_dir>/correlation.db` periodically and on
shutdown, and restores it before the first event; deadlines that passed while stopped fire at the
first clock tick. The state is serialised on the event loop (a consistent cut), written in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.metrics import Gauge, Histogram

from correlator import gctune
from correlator.correlation.core import Engine
from correlator.correlation.stage import Correlate

log = logging.getLogger(__name__)

SNAPSHOT_SECONDS = Histogram(
    "correlator_correlation_snapshot_seconds",
    "Time to save the level-2 state (serialise and write)",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0),
)
SNAPSHOT_BYTES = Gauge("correlator_correlation_snapshot_bytes", "Size of the last level-2 state snapshot")

# store_pos: the event store's position when the rule's state was taken, so that after a crash the
# events stored since can be fed to it again (see lifecycle.recover); clock: the correlation time then.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS correlation_rules (
    rule TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    saved REAL NOT NULL,
    store_pos INTEGER NOT NULL,
    clock REAL NOT NULL,
    body BLOB NOT NULL
)
"""

Row = tuple[str, str, bytes, int, float]  # rule, kind, state, store position, correlation clock


def encode(stage: Correlate, store_pos: int = 0) -> list[Row]:
    stage.sync()
    now = stage.clock.now() if stage.clock is not None else 0.0
    return [encode_rule(e, store_pos, now) for e in stage.engines]


def encode_rule(engine: Engine, store_pos: int = 0, clock: float = 0.0) -> Row:
    """Serialise one rule's state (on the event loop: a consistent cut without copying the state).

    The garbage collector is paused meanwhile: with millions of state objects alive, the temporary
    lists would otherwise trigger full collections that cost more than the serialisation itself.
    """
    with gctune.paused():
        return engine.name, engine.kind, orjson.dumps(engine.snapshot()), store_pos, clock


def write_rows(path: Path, rows: list[Row], saved: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        with db:  # one transaction: the file always holds one complete snapshot
            db.execute("DELETE FROM correlation_rules")
            db.executemany(
                "INSERT INTO correlation_rules (rule, kind, saved, store_pos, clock, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r, k, saved, pos, clock, b) for r, k, b, pos, clock in rows],
            )
    finally:
        db.close()


def read_rows(path: Path) -> tuple[dict[str, tuple[str, Any]], dict[str, tuple[int, float]]]:
    """The saved state by rule, and where each was taken: (store position, correlation clock)."""
    if not path.exists():
        return {}, {}
    db = sqlite3.connect(path)
    try:
        db.execute(_SCHEMA)
        rows = db.execute("SELECT rule, kind, body, store_pos, clock FROM correlation_rules").fetchall()
    finally:
        db.close()
    out: dict[str, tuple[str, Any]] = {}
    marks: dict[str, tuple[int, float]] = {}
    for rule, kind, body, pos, clock in rows:
        try:
            out[rule] = (kind, orjson.loads(body))
            marks[rule] = (pos, clock)
        except orjson.JSONDecodeError:
            log.error("correlation state of rule %s in %s is unreadable; it starts empty", rule, path)
    return out, marks


async def save(stage: Correlate, path: Path) -> int:
    """Snapshot now; returns the bytes written. Never raises (a failed save is logged, retried later)."""
    try:
        rows = encode(stage)
    except Exception:
        log.exception("could not serialise the correlation state")
        return 0
    return await write(rows, path)


async def write(rows: list[Row], path: Path) -> int:
    t0 = time.perf_counter()
    try:
        await asyncio.to_thread(write_rows, path, rows, time.time())
    except Exception:
        log.exception("could not save the correlation state to %s", path)
        return 0
    size = sum(len(r[2]) for r in rows)
    SNAPSHOT_BYTES.set(size)
    SNAPSHOT_SECONDS.observe(time.perf_counter() - t0)
    return size


def restore(stage: Correlate, path: Path) -> dict[str, tuple[int, float]]:
    """Load the saved state into the stage's rules; returns where each restored rule's state was taken."""
    try:
        saved, marks = read_rows(path)
    except sqlite3.Error as e:
        log.error("could not read the correlation state %s: %s; starting empty", path, e)
        return {}
    restored = stage.restore(saved)
    if saved:
        log.info("restored level-2 state of %d rules from %s", len(restored), path)
    return {name: marks[name] for name in restored}
