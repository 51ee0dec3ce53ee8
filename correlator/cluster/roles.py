"""What `--role ingest` and `--role worker` change in the daemon (correlator/daemon.py): the queue
(JetStream instead of the SQLite journal), the stores (PostgreSQL, shared), and for a worker the
partition leases. `--role all` never comes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from correlator.changes.feed import ChangeFeed
from correlator.changes.service import ChangeService
from correlator.clock import Clock
from correlator.cluster.bus import Bus, cluster_dsn, connect, member_name
from correlator.cluster.consume import PartitionQueue
from correlator.cluster.fence import give_up, worker_dsn
from correlator.cluster.handover import StateKeeper
from correlator.cluster.leases import Leases
from correlator.cluster.partition import host_key
from correlator.cluster.publish import BusQueue
from correlator.cluster.state import Partitioner
from correlator.config import ClusterConfig, Config
from correlator.errors import ConfigError
from correlator.event import Event
from correlator.incidents import IncidentService
from correlator.inventory import load_inventory
from correlator.runner import PipelineRunner
from correlator.store import EventStore

log = logging.getLogger(__name__)


def prepare(config: Config) -> Config:
    """The scale-out roles share PostgreSQL: `cluster.dsn` becomes the store of every service.
    A worker without one is refused (its incidents would live in one process' SQLite file)."""
    role = config.cluster.role
    if role == "all":
        return config
    c = config.cluster
    if c.partitions < 1:
        raise ConfigError("'cluster.partitions': expected at least 1")
    if c.replicas not in (1, 3, 5):
        raise ConfigError(f"'cluster.replicas': expected 1, 3 or 5, got {c.replicas}")
    if not c.stream.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"'cluster.stream': expected letters, digits, '-' or '_', got {c.stream!r}")
    if c.dsn is not None and c.dsn_file is not None:
        raise ConfigError("'cluster.dsn_file': give either dsn or dsn_file, not both")
    dsn = cluster_dsn(c)
    if dsn is None:
        raise ConfigError(
            f"'cluster.dsn': --role {role} needs the shared PostgreSQL (cluster.dsn or dsn_file)"
        )
    if not dsn.startswith(("postgres://", "postgresql://")):
        raise ConfigError("'cluster.dsn': expected a PostgreSQL DSN like postgresql://host/db")
    if role == "worker":  # an identity of its own in the database, to fence it out (cluster/fence.py)
        dsn = worker_dsn(dsn, member_name(c))
    storage = dataclasses.replace(config.storage, dsn=dsn)
    if role == "worker":  # collectors belong to ingest processes
        collectors = {name: {"enabled": False} for name in config.collectors}
        return dataclasses.replace(config, storage=storage, collectors=collectors)
    return dataclasses.replace(config, storage=storage)


@dataclass
class ClusterNode:
    role: str
    bus: Bus
    queue: BusQueue | PartitionQueue
    leases: Leases | None = None
    partitioner: Partitioner | None = None
    state: StateKeeper | None = None
    snapshot_interval: float = 60.0
    changes: ChangeFeed | None = None
    _task: asyncio.Task[None] | None = None
    _state_task: asyncio.Task[None] | None = None
    _changes_task: asyncio.Task[None] | None = None

    def follow(self, incidents: IncidentService, changes: ChangeService, dsn: str | None) -> None:
        """Every process reads an incident again before changing it (others write the same table);
        a worker taking a partition also reads the unclosed ones again (its deadlines). Changes
        saved by any process reach the others' change windows (changes/feed.py)."""
        incidents.shared = True
        changes.share_calendar(lambda: self.timer_leader)  # ingest processes: never
        if dsn is not None:
            self.changes = ChangeFeed(changes, dsn)
        if isinstance(self.queue, PartitionQueue):

            async def on_take(p: int) -> None:
                if self.state is not None:
                    await self.state.take(p)
                await incidents.reload()

            self.queue.on_take = on_take

    def keep_state(self, runner: PipelineRunner, store: EventStore, clock: Clock) -> None:
        """A worker's level-2 state moves with its partitions (cluster/handover.py)."""
        if not isinstance(self.queue, PartitionQueue) or self.partitioner is None:
            return
        self.state = StateKeeper(self.bus, self.queue, runner, store, clock, self.partitioner)
        self.queue.on_release = self.state.hand_over
        self.queue.on_gone = self.state.forget
        if self.leases is not None:  # fenced out of the database: give every partition up
            runner.on_fenced = functools.partial(give_up, self.leases, self.queue)

    @property
    def timer_leader(self) -> bool:
        """The owner of partition 0 runs the cluster's timers (incident deadlines, the change
        calendar): one process, moving with the partition when its owner dies."""
        return self.leases is not None and 0 in self.leases.owned

    async def run_timers(
        self, incidents: IncidentService, calendar: Callable[[float], Awaitable[None]] | None, now: float
    ) -> None:
        """One round of the shared timers, on the leader only. The leader reads every unclosed
        incident first: deadlines of incidents other workers opened are in PostgreSQL, not here."""
        if not self.timer_leader:
            return
        await incidents.reload()
        await incidents.run_due(now)
        if calendar is not None:
            await calendar(now)

    def start(self) -> None:
        if self.changes is not None:
            self._changes_task = asyncio.create_task(self.changes.run(), name="change-feed")
        if self.leases is not None:
            self._task = asyncio.create_task(self.leases.run(), name="partition-leases")
        if self.state is not None:
            self._state_task = asyncio.create_task(
                self.state.run(self.snapshot_interval), name="partition-snapshots"
            )

    def stop_input(self) -> None:
        """Shutdown, before draining: a worker takes no new partition and fetches no more."""
        if self._task is not None:
            self._task.cancel()
        if self._state_task is not None:
            self._state_task.cancel()
        self.queue.close_for_input()

    async def close(self) -> None:
        """After draining: hand the partitions over now rather than after lease_ttl."""
        if self._changes_task is not None:
            self._changes_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._changes_task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._state_task is not None:
            self._state_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._state_task
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.release_all()
        await self.queue.close()
        await self.bus.close()


START_WAIT = 30.0  # seconds a starting process waits for JetStream before it gives up


async def _connect_patiently(c: ClusterConfig) -> Bus:
    """Connect, retrying for START_WAIT: processes often start together with their NATS cluster, and
    JetStream answers its API only once the nodes have elected a meta leader (seconds under load)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WAIT
    delay = 0.5
    while True:
        try:
            return await connect(c)
        except ConfigError:
            raise
        except Exception as e:
            if loop.time() + delay >= deadline:
                raise ConfigError(
                    f"'cluster.servers': cannot reach NATS JetStream at {c.servers}: {e!r}"
                ) from None
            log.warning("cluster: NATS JetStream at %s not ready (%r); retrying", c.servers, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def join(config: Config) -> ClusterNode:
    """Connect to NATS and make this process' queue (raises ConfigError when the cluster is unreachable)."""
    c = config.cluster
    bus = await _connect_patiently(c)
    inventory = load_inventory(config.inventory_file)  # the partition key: site per host

    def key_of(ev: Event) -> str:
        return host_key(ev.host, inventory, c.partition_by)

    if c.role == "ingest":
        return ClusterNode(
            "ingest", bus, BusQueue(bus, key_of, config.queue.max_events, config.queue.retry_after)
        )
    # The events a worker makes itself go to the stream as an ingest process' do (cluster/consume.py).
    outbox = BusQueue(bus, key_of, config.queue.max_events, config.queue.retry_after, gauges=False)
    queue = PartitionQueue(bus, config.queue.max_events, outbox)
    leases = Leases(bus, member_name(c), c.partitions, c.lease_ttl, queue.take, queue.drop)
    log.info("worker %s joins stream %s (%d partitions)", leases.member, c.stream, c.partitions)
    # The same partition of a key as the ingest processes compute: level-2 state is cut along it.
    partitioner = Partitioner(inventory, c.partition_by, c.partitions)
    return ClusterNode(
        "worker", bus, queue, leases, partitioner, snapshot_interval=config.correlation.snapshot_interval
    )
