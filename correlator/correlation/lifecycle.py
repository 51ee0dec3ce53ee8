"""Level 2 in the daemon's life: restore state at start, snapshot periodically and at shutdown.

Called from correlator/daemon.py so the daemon stays a short list of wiring steps; the state file is
`<data_dir>/correlation.db` (see snapshot.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator.clock import Clock
from correlator.config import Config
from correlator.correlation import snapshot
from correlator.correlation.stage import Correlate
from correlator.pipeline import Pipeline
from correlator.runner import PipelineRunner
from correlator.store import EventStore

log = logging.getLogger(__name__)

STATE_FILE = "correlation.db"
REFEED_CHUNK = 10_000


def _stage(pipeline: Pipeline) -> Correlate | None:
    stage = pipeline.find("correlate")
    return stage if isinstance(stage, Correlate) else None


async def recover(pipeline: Pipeline, data_dir: Path, store: EventStore, clock: Clock) -> int:
    """At start, before the first event: restore the last snapshot, then feed each rule the events
    stored since its snapshot was taken (a crash skipped the shutdown snapshot), and save anew.

    Returns how many stored events were fed again.
    """
    stage = _stage(pipeline)
    if stage is None:
        return 0
    marks = snapshot.restore(stage, data_dir / STATE_FILE)
    fed = 0
    try:
        fed = await _refeed(stage, store, marks)
    except Exception:
        log.exception("could not feed the events stored since the last snapshot to level 2 again")
    stage.bind(clock)
    await save_state(pipeline, data_dir, asyncio.Lock(), store)
    return fed


async def _refeed(stage: Correlate, store: EventStore, marks: dict[str, tuple[int, float]]) -> int:
    fed = 0
    if marks:
        t0 = time.perf_counter()
        taken_at = {name: pos for name, (pos, _) in marks.items()}
        virtual = Clock(min(c for _, c in marks.values()))
        start = min(taken_at.values())
        while rows := await store.after(start, REFEED_CHUNK):
            stage.refeed(rows, taken_at, virtual)
            start = rows[-1][0]
            fed += len(rows)
        if fed:
            took = time.perf_counter() - t0
            log.info("fed %d events stored after the last snapshot to level 2 again in %.1fs", fed, took)
    return fed


async def save_state(
    pipeline: Pipeline,
    data_dir: Path,
    lock: contextlib.AbstractAsyncContextManager[object],
    store: EventStore | None = None,
) -> None:
    """Snapshot each rule between batches (under the runner's lock), so it matches what was stored."""
    stage = _stage(pipeline)
    if stage is None:
        return
    stage.sync()
    rows = []
    for engine in list(stage.engines):
        # One rule at a time, between batches, yielding in between: with a million keys the whole
        # takes seconds of CPU, and ingest must stay responsive meanwhile.
        async with lock:
            pos = await store.position() if store is not None else 0
            now = stage.clock.now() if stage.clock is not None else 0.0
            try:
                rows.append(snapshot.encode_rule(engine, pos, now))
            except Exception:
                log.exception("could not serialise the state of level-2 rule %s; not saved", engine.name)
        await asyncio.sleep(0)
    await snapshot.write(rows, data_dir / STATE_FILE)


def schedule_snapshots(
    scheduler: AsyncIOScheduler, runner: PipelineRunner, config: Config, store: EventStore
) -> None:
    scheduler.add_job(
        save_state,
        "interval",
        args=(runner.pipeline, config.storage.data_dir, runner.lock, store),
        seconds=config.correlation.snapshot_interval,
        id="correlation-snapshot",
    )


async def close_stages(pipeline: Pipeline) -> None:
    """Let stages with background work (the notify sender) finish and release their resources."""
    for stage in pipeline.stages:
        aclose = getattr(stage, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                log.exception("stage %s failed to close", stage.name)
