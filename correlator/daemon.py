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
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator import datalock, door, gctune, httpworkers, metrics
from correlator.api import rules as rules_api
from correlator.api.app import make_app
from correlator.api.auth import load_tokens
from correlator.api.common import AppState
from correlator.api.connections import LIMITS, ConnectionLimits, LimitedRunner
from correlator.api.exposure import check_exposure
from correlator.availability import AvailabilityStage
from correlator.availability import parse_settings as parse_availability
from correlator.availability.reload import ServicesReloader
from correlator.capacity import parse_settings as parse_capacity
from correlator.catalogue import load_catalogue
from correlator.changes import settings as change_settings
from correlator.changes.reload import CalendarReloader
from correlator.changes.service import ChangeService
from correlator.clock import Clock, wall_clock
from correlator.collector import Collector, CollectorContext, create_collectors
from correlator.config import Config
from correlator.correlation import lifecycle as correlation
from correlator.errors import ConfigError
from correlator.incidents import IncidentService, parse_settings
from correlator.incidents import scheduler as incident_scheduler
from correlator.ingest import Ingest
from correlator.notify.incidents import Notifier
from correlator.notify.notice import FILE as OUTBOX_FILE
from correlator.notify.stage import parse_targets
from correlator.problems import settings as problem_settings
from correlator.problems.service import ProblemService
from correlator.queue import IngestQueue
from correlator.queue.journal import JournalQueue
from correlator.reloads import Reloads, Target
from correlator.rules.errors import RuleErrors
from correlator.rules.reload import RulesHolder
from correlator.runner import PipelineRunner
from correlator.services import Services, assemble, close_services, open_services
from correlator.store import EventStore
from correlator.store.postgres import PgEventStore
from correlator.store.sqlite import SqliteEventStore

if TYPE_CHECKING:  # the cluster modules (nats-py) are imported only by the scale-out roles
    from correlator.cluster.roles import ClusterNode

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    config: Config
    clock: Clock
    queue: IngestQueue
    store: EventStore
    runner: PipelineRunner
    app: web.Application
    collectors: list[Collector]
    scheduler: AsyncIOScheduler
    rules: RulesHolder
    reloads: Reloads  # the services file, the rules and the calendar: file changes, SIGHUP, the API
    incidents: IncidentService
    changes: ChangeService
    problems: ProblemService
    lock: datalock.DataDirLock  # held until the process has closed every store
    ingest: Ingest  # the collectors' and the API's way onto `queue`
    cluster: ClusterNode | None = None  # --role ingest or worker: the NATS side (docs/cluster.md)


async def build(config: Config) -> Daemon:
    """Validate everything first (collector settings included), then open the files."""
    if config.cluster.role != "all":
        from correlator.cluster import roles

        config = roles.prepare(config)
    data = config.storage.data_dir
    auth = load_tokens(config.http.tokens, config.http.tokens_file)
    check_exposure(config, auth.enabled)  # first: an open listener is refused before anything else runs
    # Every section is checked before start-up stops, so one run shows every error (like `rules check`).
    errors = section_errors(config)
    # The service catalogue (availability.services_file): one holder, shared by availability and
    # topology root cause (impacted_services), swapped by its reloads.
    try:
        catalogue = load_catalogue(config)
    except ConfigError as e:
        errors.append(str(e))
        catalogue = None
    rules = RulesHolder(config.rules_dir, config.inventory_file, catalogue)
    try:
        rules.load_initial()  # like promtool-checked Prometheus: a broken set stops start-up
    except RuleErrors as e:
        errors.append(f"{len(e.errors)} error(s) in the rules:\n{e}")
    if errors:
        raise ConfigError("\n".join(errors))
    clock = wall_clock()
    store: EventStore = (
        PgEventStore(config.storage.dsn)
        if config.storage.dsn
        else SqliteEventStore(data / "events.db", fsync=config.storage.fsync)
    )
    node: ClusterNode | None = None
    queue: IngestQueue
    if config.cluster.role == "all":
        queue = JournalQueue(
            data / "journal.db", config.queue.max_events, config.queue.retry_after, config.storage.fsync
        )
    else:
        node = await roles.join(config)
        queue = node.queue
    ingest = Ingest(queue, store)
    services = assemble(
        config,
        rules,
        clock,
        data,
        lambda targets: Notifier(targets, data / OUTBOX_FILE),
        ingest.emit,
        full=ingest.full,
    )
    incidents, changes, problems = services.incidents, services.changes, services.problems
    csettings, pipeline = services.change_settings, services.pipeline
    if node is not None:
        node.follow(incidents, changes, config.storage.dsn)
    runner = PipelineRunner(
        queue, pipeline, store, clock, config.queue.batch_events, config.queue.stall_after
    )
    if node is not None:  # level-2 state per partition, moving with it (docs/cluster.md)
        node.keep_state(runner, store, clock)
    state = AppState(
        store=store,
        queue=queue,
        incidents=incidents,
        changes=changes,
        problems=problems,
        auth=auth,
        progress=runner.progress,
        ingest=ingest,
    )
    app = make_app(state, config.http.max_body_bytes, ConnectionLimits.from_config(config.http))
    reload_targets: list[Target] = [rules]
    if catalogue is not None:  # first: the rules then reload against the catalogue it may have swapped
        availability = pipeline.find("availability")
        stage = availability if isinstance(availability, AvailabilityStage) else None
        asettings = parse_availability(config.availability)
        reload_targets.insert(0, ServicesReloader(catalogue, asettings, stage, rules, clock))
    if csettings.calendar_file is not None:
        reload_targets.append(CalendarReloader(changes, csettings.calendar_file, csettings.topology_file))
    reloads = Reloads(reload_targets)
    rules_api.add_routes(app, rules, reloads)
    door.configure(door.TimePolicy(config.ingest.max_future, config.ingest.max_past))
    ctx = CollectorContext(ingest.emit, ingest.retry_after, app, clock, config, data, ingest.dead_letter)
    state.collectors = create_collectors(config, ctx)
    # Everything is validated: from here on one process per data directory, taken before the
    # first file is opened (a second daemon would restore the same state and re-feed the journal).
    try:
        lock = datalock.acquire(data)
    except BaseException:
        if node is not None:
            await node.close()
        raise
    try:
        await _open_state(store, queue, services, data, clock, own_state=node is None)
    except BaseException:
        lock.release()
        if node is not None:
            await node.close()
        raise
    if not auth.enabled:
        log.warning("no API tokens in http.tokens: the API is open to anyone who can reach it (docs/api.md)")
    scheduler = AsyncIOScheduler(timezone="UTC")
    return Daemon(
        config,
        clock,
        queue,
        store,
        runner,
        app,
        state.collectors,
        scheduler,
        rules,
        reloads,
        incidents,
        changes,
        problems,
        lock,
        ingest,
        node,
    )


def section_errors(config: Config) -> list[str]:
    """The first error of each section that the daemon parses itself (collectors: create_collectors)."""
    checks: list[tuple[Callable[[Any], object], Any]] = [
        (parse_settings, config.incidents),
        (change_settings.parse_settings, config.changes),
        (problem_settings.parse_settings, config.problems),
        (parse_capacity, config.capacity),
        (parse_targets, config.correlation.notify),
    ]
    errors: list[str] = []
    for parse, raw in checks:
        try:
            parse(raw)
        except ConfigError as e:
            errors.append(str(e))
    return errors


async def _open_state(
    store: EventStore, queue: IngestQueue, services: Services, data: Path, clock: Clock, own_state: bool
) -> None:
    """Open every store in order; on a failure, close what was opened. `own_state`: level 2 is
    restored from the data directory (in the cluster it comes with each partition taken)."""
    pipeline = services.pipeline
    await store.open()
    try:
        await queue.open()
        try:
            await open_services(services)
            try:
                await pipeline.open(clock)
                # Before the first event: no open window, pending pair or heartbeat deadline is forgotten.
                if own_state:
                    await correlation.recover(pipeline, data, store, clock)
            except BaseException:
                await pipeline.close()
                await close_services(services)
                raise
        except BaseException:
            await queue.close()
            raise
    except BaseException:
        await store.close()
        raise


async def run(config: Config) -> int:
    # The HTTP port first: when it is taken, start-up stops before a store, a collector or a
    # scheduled job has started (nothing to cancel half-way). Bound, not listening: clients are
    # refused until the server starts in _serve.
    sock = _bind(*config.http.listen)
    try:
        return await _serve(config, sock)
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"'http.listen': cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restart at once
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ConfigError(f"'http.listen': cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


async def _serve(config: Config, sock: socket.socket) -> int:
    daemon = await build(config)
    gctune.tune()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sighups: set[asyncio.Task[object]] = set()

    def on_sighup() -> None:  # reload every target; a broken file keeps its previous version
        task = asyncio.create_task(daemon.reloads.reload("SIGHUP"))
        sighups.add(task)
        task.add_done_callback(_sighup_done)

    def _sighup_done(task: asyncio.Task[object]) -> None:
        sighups.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:  # e.g. the record store down
            log.error("SIGHUP reload failed", exc_info=e)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    http = LimitedRunner(
        daemon.app,
        daemon.app[LIMITS],
        access_log=None,
        shutdown_timeout=config.shutdown_grace / 2,
        keepalive_timeout=config.http.idle_timeout,
    )
    tasks: list[asyncio.Task[None]] = []
    workers: httpworkers.Workers | None = None
    stopped = False
    try:
        consumes = config.cluster.role != "ingest"  # an ingest process only publishes to the stream
        if consumes:
            tasks.append(asyncio.create_task(daemon.runner.run(), name="pipeline"))
            tasks.append(asyncio.create_task(_tick(daemon.runner), name="clock"))
        tasks.append(asyncio.create_task(daemon.reloads.watch(), name="reload-watch"))
        for c in daemon.collectors:
            await c.start()
            metrics.COLLECTOR_UP.labels(c.name).set(1)
            log.info("collector %s started%s", c.name, _where(c))
        _schedule_retention(daemon)
        if daemon.cluster is not None:
            _schedule_cluster_timers(daemon)  # one leader for the workers; none in ingest
        else:
            incident_scheduler.attach(daemon.scheduler, daemon.incidents, daemon.clock)
            _schedule_calendar(daemon)
        if daemon.cluster is not None:
            daemon.cluster.start()
        if daemon.cluster is None:  # a worker snapshots per partition (cluster/handover.py)
            correlation.schedule_snapshots(daemon.scheduler, daemon.runner, config, daemon.store)
        public = httpworkers.PublicPort(sock)  # the daemon's own accepting on the port
        secret = httpworkers.prepare(config, daemon.app, public)
        await http.setup()
        host, port = config.http.listen
        await public.serve(http)
        workers = await httpworkers.start(config, http, sock, secret, public)
        log.info("correlator listening on http://%s:%d (data in %s)", host, port, config.storage.data_dir)
        await stop.wait()
        log.info("shutting down: draining up to %.1fs", config.shutdown_grace)
        if workers is not None:  # first: their requests in hand still reach the journal
            await workers.stop(config.shutdown_grace / 2)
        daemon.ingest.close_for_input()
        if daemon.cluster is not None:
            daemon.cluster.stop_input()
        await public.close()
        await _stop_collectors(daemon.collectors)
        stopped = True
        deadline = loop.time() + config.shutdown_grace
        while daemon.queue.depth() > 0 and loop.time() < deadline and consumes and not tasks[0].done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        # Also on a failed start: aiosqlite's threads would otherwise keep the process alive.
        left = daemon.queue.depth()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=False)
        if daemon.cluster is None:
            await correlation.save_state(
                daemon.runner.pipeline, config.storage.data_dir, daemon.runner.lock, daemon.store
            )
        await correlation.close_stages(daemon.runner.pipeline)
        if not stopped:
            await _stop_collectors(daemon.collectors)
        if workers is not None and not workers.stopping:
            await workers.stop(1.0)
        await http.cleanup()
        await daemon.runner.pipeline.close()
        await daemon.incidents.close()
        await daemon.changes.store.close()
        if daemon.cluster is not None:  # after the last write: then hand the partitions over
            await daemon.cluster.close()
        else:
            await daemon.queue.close()
        await daemon.store.close()
        daemon.lock.release()
    if left:
        log.warning("shutdown: %d events left in the journal; they are processed at the next start", left)
    log.info("stopped")
    return 0


def _schedule_retention(daemon: Daemon) -> None:
    retention = daemon.config.storage.retention

    async def enforce_retention() -> None:
        n = await daemon.store.delete_older_than(time.time() - retention)
        if n:
            log.info("retention: deleted %d events older than %.0fs", n, retention)

    # Runs once right away (next_run_time), then every retention_interval.
    daemon.scheduler.add_job(
        enforce_retention,
        "interval",
        seconds=daemon.config.storage.retention_interval,
        id="retention",
        next_run_time=datetime.now(UTC),
    )
    daemon.scheduler.start()


def _schedule_calendar(daemon: Daemon) -> None:
    """Calendar windows open and close on time even when no event arrives."""

    async def run_due() -> None:
        try:
            await daemon.changes.run_due(daemon.clock.now())
        except Exception:
            log.exception("change calendar: running due occurrences failed")

    daemon.scheduler.add_job(
        run_due, "interval", seconds=10, id="changes:due", next_run_time=datetime.now(UTC)
    )


def _schedule_cluster_timers(daemon: Daemon) -> None:
    """Cluster: incident deadlines and the change calendar run on the worker owning partition 0."""
    node = daemon.cluster
    if node is None or node.role != "worker":
        return

    async def run_due() -> None:
        try:
            await node.run_timers(daemon.incidents, daemon.changes.run_due, daemon.clock.now())
        except Exception:
            log.exception("cluster timers: running due incident deadlines and calendar changes failed")

    daemon.scheduler.add_job(
        run_due, "interval", seconds=10, id="cluster:due", next_run_time=datetime.now(UTC)
    )


def _where(collector: Collector) -> str:
    where = getattr(collector, "where", "")  # optional: what the collector listens on or connects to
    return f": {where}" if where else ""


async def _stop_collectors(collectors: list[Collector]) -> None:
    for c in collectors:
        try:
            await c.stop()
        except Exception:
            log.exception("collector %s failed to stop cleanly", c.name)
        metrics.COLLECTOR_UP.labels(c.name).set(0)


async def _tick(runner: PipelineRunner) -> None:
    """Live mode: advance the correlation clock to wall time so timeouts fire without new events;
    what level-2 timers emit goes through the rest of the pipeline to the store."""
    while True:
        try:
            await runner.tick(time.time())
        except Exception:
            log.exception("clock tick failed")
        await asyncio.sleep(1.0)
