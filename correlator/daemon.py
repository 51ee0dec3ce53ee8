"""The daemon: wires queue, pipeline, store, collectors and the HTTP API, and runs until a signal.

Start-up order: store and journal (recovering unprocessed events), pipeline consumer, collectors,
then the HTTP server. Shutdown on SIGTERM/SIGINT: stop accepting, drain the queue within the grace
period, flush, close; whatever was not processed stays in the journal for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator import metrics
from correlator.api import rules as rules_api
from correlator.api.app import make_app
from correlator.api.common import AppState
from correlator.clock import Clock, wall_clock
from correlator.collector import Collector, CollectorContext, create_collectors
from correlator.config import Config
from correlator.correlation import lifecycle as correlation
from correlator.errors import ConfigError
from correlator.ingest import Ingest
from correlator.pipeline import build_pipeline
from correlator.queue.journal import JournalQueue
from correlator.rules.errors import RuleErrors
from correlator.rules.reload import RulesHolder
from correlator.runner import PipelineRunner
from correlator.store.sqlite import SqliteEventStore

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    config: Config
    clock: Clock
    queue: JournalQueue
    store: SqliteEventStore
    runner: PipelineRunner
    app: web.Application
    collectors: list[Collector]
    scheduler: AsyncIOScheduler
    rules: RulesHolder


async def build(config: Config) -> Daemon:
    data = config.storage.data_dir
    rules = RulesHolder(config.rules_dir, config.inventory_file)
    try:
        rules.load_initial()  # like promtool-checked Prometheus: a broken set stops start-up
    except RuleErrors as e:
        raise ConfigError(f"{len(e.errors)} error(s) in the rules:\n{e}") from None
    clock = wall_clock()
    store = SqliteEventStore(data / "events.db")
    await store.open()
    queue = JournalQueue(
        data / "journal.db", config.queue.max_events, config.queue.retry_after, config.storage.fsync
    )
    await queue.open()
    pipeline = build_pipeline(config, rules)
    correlation.restore_state(pipeline, data)  # before the first event: no window, pair or deadline forgotten
    runner = PipelineRunner(queue, pipeline, store, clock, config.queue.batch_events)
    state = AppState(store=store, queue=queue)
    app = make_app(state, config.http.max_body_bytes)
    rules_api.add_routes(app, rules)
    ctx = CollectorContext(Ingest(queue).emit, app, clock, config, data)
    state.collectors = create_collectors(config, ctx)
    scheduler = AsyncIOScheduler(timezone="UTC")
    return Daemon(config, clock, queue, store, runner, app, state.collectors, scheduler, rules)


async def run(config: Config) -> int:
    daemon = await build(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    reloads: set[asyncio.Task[object]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(daemon.rules.reload("SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)

    consumer = asyncio.create_task(daemon.runner.run(), name="pipeline")
    ticker = asyncio.create_task(_tick(daemon.runner), name="clock")
    watcher = asyncio.create_task(daemon.rules.watch(), name="rules-watch")
    for c in daemon.collectors:
        await c.start()
        metrics.COLLECTOR_UP.labels(c.name).set(1)

    retention = config.storage.retention

    async def enforce_retention() -> None:
        n = await daemon.store.delete_older_than(time.time() - retention)
        if n:
            log.info("retention: deleted %d events older than %.0fs", n, retention)

    daemon.scheduler.add_job(
        enforce_retention,
        "interval",
        seconds=config.storage.retention_interval,
        id="retention",
        next_run_time=None,
    )
    daemon.scheduler.add_job(
        correlation.save_state,
        "interval",
        args=(daemon.runner.pipeline, config.storage.data_dir, daemon.runner.lock),
        seconds=config.correlation.snapshot_interval,
        id="correlation-snapshot",
    )
    daemon.scheduler.start()
    await enforce_retention()

    runner = web.AppRunner(daemon.app, access_log=None, shutdown_timeout=config.shutdown_grace / 2)
    await runner.setup()
    host, port = config.http.listen
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    log.info("correlator listening on http://%s:%d (data in %s)", host, port, config.storage.data_dir)

    await stop.wait()
    log.info("shutting down: draining up to %.1fs", config.shutdown_grace)
    deadline = loop.time() + config.shutdown_grace
    daemon.queue.close_for_input()
    await site.stop()
    for c in daemon.collectors:
        with contextlib.suppress(Exception):
            await c.stop()
        metrics.COLLECTOR_UP.labels(c.name).set(0)
    while daemon.queue.depth() > 0 and loop.time() < deadline and not consumer.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    left = daemon.queue.depth()
    consumer.cancel()
    ticker.cancel()
    watcher.cancel()
    for task in (consumer, ticker, watcher):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    daemon.scheduler.shutdown(wait=False)
    await correlation.save_state(daemon.runner.pipeline, config.storage.data_dir, daemon.runner.lock)
    await correlation.close_stages(daemon.runner.pipeline)
    await runner.cleanup()
    await daemon.queue.close()
    await daemon.store.close()
    if left:
        log.warning("shutdown: %d events left in the journal; they are processed at the next start", left)
    log.info("stopped")
    return 0


async def _tick(runner: PipelineRunner) -> None:
    """Live mode: advance the correlation clock to wall time so timeouts fire without new events;
    what level-2 timers emit goes through the rest of the pipeline to the store."""
    while True:
        try:
            await runner.tick(time.time())
        except Exception:
            log.exception("clock tick failed")
        await asyncio.sleep(1.0)
