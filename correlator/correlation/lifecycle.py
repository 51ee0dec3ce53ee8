"""Level 2 in the daemon's life: restore state at start, snapshot periodically and at shutdown.

Called from correlator/daemon.py so the daemon stays a short list of wiring steps; the state file is
`<data_dir>/correlation.db` (see snapshot.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator.config import Config
from correlator.correlation import snapshot
from correlator.correlation.stage import Correlate
from correlator.pipeline import Pipeline
from correlator.runner import PipelineRunner

log = logging.getLogger(__name__)

STATE_FILE = "correlation.db"


def _stage(pipeline: Pipeline) -> Correlate | None:
    stage = pipeline.find("correlate")
    return stage if isinstance(stage, Correlate) else None


def restore_state(pipeline: Pipeline, data_dir: Path) -> None:
    stage = _stage(pipeline)
    if stage is not None:
        snapshot.restore(stage, data_dir / STATE_FILE)


async def save_state(pipeline: Pipeline, data_dir: Path, lock: asyncio.Lock) -> None:
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
            rows.append(snapshot.encode_rule(engine))
        await asyncio.sleep(0)
    await snapshot.write(rows, data_dir / STATE_FILE)


def schedule_snapshots(scheduler: AsyncIOScheduler, runner: PipelineRunner, config: Config) -> None:
    scheduler.add_job(
        save_state,
        "interval",
        args=(runner.pipeline, config.storage.data_dir, runner.lock),
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
