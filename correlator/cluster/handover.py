"""Level-2 state moves with its partition: snapshots per partition in the state bucket, restored by
the next owner before it reads the partition's stream.

- periodically (`correlation.snapshot_interval`) and when a partition is handed over (SIGTERM,
  rebalancing), the owner writes `l2.<p>` for each of its partitions: the state of the partition's
  keys, taken between batches when everything processed is stored (cluster/state.py says what it
  holds). The write is revision-checked like the position: the next owner rewrites the key when it
  takes the partition, so an old owner that wakes up cannot put its state back;
- a worker taking a partition restores `l2.<p>` into its rules, then feeds them the partition's
  events stored after the snapshot (correlation only: what they made is stored already), on a clock
  that starts at the snapshot's correlation time, so windows, pairs and deadlines continue exactly;
  only then does it read the stream after the partition's position;
- a worker that gives a partition up forgets its keys, so none of its timers fires there again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client.metrics import Counter, Histogram

from correlator.clock import Clock
from correlator.cluster.bus import Bus
from correlator.cluster.consume import FENCED, PartitionQueue
from correlator.cluster.fence import Owners
from correlator.cluster.snapshots import SnapshotSlots
from correlator.cluster.state import Partitioner, PartitionSnapshot, merge, replace, split, state_of
from correlator.correlation.stage import Correlate
from correlator.pipeline import Pipeline
from correlator.runner import PipelineRunner
from correlator.store import EventStore

log = logging.getLogger(__name__)

RESTORED = Counter(
    "correlator_cluster_state_restored_total", "Partitions whose level-2 state was restored from a snapshot"
)
REFED = Counter(
    "correlator_cluster_state_refed_events_total",
    "Stored events fed to level 2 again after restoring a partition's snapshot",
)
SAVE_SECONDS = Histogram(
    "correlator_cluster_state_save_seconds",
    "Time to snapshot the level-2 state of this worker's partitions",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0),
)

REFEED_CHUNK = 10_000


class StateKeeper:
    def __init__(
        self,
        bus: Bus,
        queue: PartitionQueue,
        runner: PipelineRunner,
        store: EventStore,
        clock: Clock,
        partitioner: Partitioner,
    ) -> None:
        self._slots = SnapshotSlots(bus)
        self._owners = Owners(store)
        self._queue = queue
        self._runner = runner
        self._store = store
        self._clock = clock
        self._parts = partitioner
        self._purges: set[asyncio.Task[None]] = set()
        self.restored: dict[int, int] = {}  # partition -> stream sequence of the snapshot restored

    @property
    def _pipeline(self) -> Pipeline:
        return self._runner.pipeline

    def _stage(self) -> Correlate | None:
        stage = self._pipeline.find("correlate")
        return stage if isinstance(stage, Correlate) else None

    # --- taking a partition ----------------------------------------------------------------------

    async def take(self, p: int) -> None:
        """Before the first event of `p`: fence the snapshot key, restore it, feed the stored events
        after it. Raises when the bucket refuses (the partition is then not taken, and retried)."""
        try:
            await self._take(p)
        except BaseException:
            self.forget(p)  # whatever was restored goes: the partition is taken again later
            raise

    async def _take(self, p: int) -> None:
        snap: PartitionSnapshot | None = None
        raw = await self._slots.take(p)
        if raw is not None:
            try:
                snap = PartitionSnapshot.decode(raw)
            except Exception as e:  # written by a newer version, or damaged: start empty
                log.error("partition %d: level-2 snapshot unreadable (%s); its rules start empty", p, e)
        stage = self._stage()
        async with self._runner.lock:  # settled: nothing from before a fence is left to write
            await self._owners.claim(p)
            if stage is None:
                return
            stage.sync()
            for engine in stage.engines:
                kept = self._without(engine, state_of(engine), {p})
                saved = snap.rules.get(engine.name) if snap is not None else None
                if saved is not None and saved[0] == engine.kind:
                    kept = merge(kept, saved[1])
                try:
                    replace(engine, kept)
                except Exception:
                    log.exception("partition %d: could not restore level-2 rule %s", p, engine.name)
            fed = await self._refeed(stage, p, snap) if snap is not None else 0
            # Attached anew: rules watching listed keys from the start (absence `expect`) list them
            # all again; the keys of partitions owned elsewhere go at once.
            stage.clock = None
            stage.bind(self._clock)
            self._cut(stage, {})  # the keys of partitions owned elsewhere go at once
        if snap is None:
            log.info("partition %d: no level-2 snapshot; its rules start empty", p)
            return
        RESTORED.inc()
        REFED.inc(fed)
        self.restored[p] = snap.seq
        log.info(
            "partition %d: level-2 state restored from stream sequence %d, %d stored events fed again",
            p,
            snap.seq,
            fed,
        )

    async def _refeed(self, stage: Correlate, p: int, snap: PartitionSnapshot) -> int:
        """The partition's events stored after the snapshot, in store order, to the restored rules.
        Store positions grow with each write and one worker at a time writes a partition's events,
        so these are exactly the events the previous owner processed after its snapshot. The store
        reads and parses only those: the hosts after the snapshot are listed first (one column),
        and the partition's own are asked for."""
        taken_at = {name: snap.store_pos for name in snap.rules}
        virtual = Clock(snap.clock)
        start = snap.store_pos
        hosts = [h for h in await self._store.hosts_after(start) if self._parts.of_host(h) == p]
        fed = 0
        try:
            while hosts and (rows := await self._store.after(start, REFEED_CHUNK, hosts)):
                start = rows[-1][0]
                stage.refeed(rows, taken_at, virtual)
                fed += len(rows)
        finally:
            stage.bind(self._clock)  # back on the live clock: deadlines past now fire at its next tick
        return fed

    # --- snapshots -------------------------------------------------------------------------------

    async def save(self, partitions: list[int] | None = None) -> None:
        """Snapshot the given partitions (default: every owned one); never raises."""
        stage = self._stage()
        owned = self._queue.partitions
        wanted = [p for p in (owned if partitions is None else partitions) if p in owned]
        if stage is None or not wanted:
            return
        t0 = time.perf_counter()
        docs: dict[int, PartitionSnapshot] = {}
        try:
            async with self._runner.lock:
                stage.sync()
                store_pos = await self._store.position()
                now = stage.clock.now() if stage.clock is not None else self._clock.now()
                for p in wanted:
                    seq = self._queue.covered(p)
                    if seq is not None:
                        docs[p] = PartitionSnapshot(seq, store_pos, now, {})
                self._cut(stage, docs)
        except Exception:
            log.exception("could not take the level-2 snapshot of partitions %s", wanted)
            return
        for p, doc in docs.items():
            await self._write(p, doc)
        SAVE_SECONDS.observe(time.perf_counter() - t0)

    def _cut(self, stage: Correlate, docs: dict[int, PartitionSnapshot]) -> None:
        """Each rule's state into `docs`, and its keys of partitions this worker does not own
        dropped (given up, or while a batch with their events was under way, or listed by a rule
        from the start). The pipeline waits meanwhile: one serialisation and one cut per rule
        serve both."""
        mine = self._mine()
        for engine in stage.engines:
            parts, rest = split(engine, state_of(engine), self._parts.key_function(engine))
            for p, doc in docs.items():
                doc.rules[engine.name] = (engine.kind, parts.get(p))
            self._keep_only(engine, parts, rest, mine, shared=bool(docs))

    async def _write(self, p: int, doc: PartitionSnapshot) -> None:
        if not self._slots.holds(p):
            return
        try:
            written = await self._slots.write(p, doc.encode())
        except Exception as e:  # NATS unreachable: the previous snapshot stays valid
            log.warning("partition %d: level-2 snapshot not saved: %s: %s", p, type(e).__name__, e)
            return
        if not written:
            FENCED.inc()
            log.error("partition %d: another worker took it over; its level-2 snapshot is not written", p)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.save()

    # --- giving a partition up -------------------------------------------------------------------

    async def hand_over(self, p: int) -> None:
        """Before the partition stops: its last snapshot, so the next owner feeds nothing again,
        and it is handed over in the database (its next owner fences no one)."""
        await self.save([p])
        try:
            await self._owners.release(p)
        except Exception as e:  # the next owner then fences this worker: it gives up and rejoins
            log.warning("partition %d: not released in the database: %s: %s", p, type(e).__name__, e)

    def forget(self, p: int) -> None:
        """The partition is gone: drop its keys from the rules (in the background: this may run
        inside the store writer, which the runner's lock waits for)."""
        self._slots.forget(p)
        self.restored.pop(p, None)
        task = asyncio.create_task(self._purge(p), name=f"forget-partition-{p}")
        self._purges.add(task)
        task.add_done_callback(self._purges.discard)

    async def _purge(self, p: int) -> None:
        stage = self._stage()
        if stage is None:
            return
        try:
            async with self._runner.lock:
                if self._slots.holds(p):
                    return  # taken again meanwhile: its restore set the state already
                stage.sync()
                for engine in stage.engines:
                    replace(engine, self._without(engine, state_of(engine), {p}))
        except Exception:
            log.exception("partition %d: could not drop its level-2 state", p)

    def _mine(self) -> set[int]:
        return set(self._queue.partitions) | self._slots.held()

    @staticmethod
    def _keep_only(engine: Any, parts: dict[int, Any], rest: Any, mine: set[int], shared: bool) -> None:
        """Make the rule's state its keys of `mine` and its unroutable ones (`parts` and `rest`:
        its state as `split` cut it); untouched when it holds no other partition's keys, the
        common case. `shared`: the cuts also sit in a snapshot encoded after the lock, so the rule
        is given a copy (restore keeps the lists it is given), and what it does next never changes
        the snapshot. Otherwise the cuts are the rule's alone (state_of made them) and need none."""
        if set(parts) <= mine:
            return
        kept = _joined(rest, parts, mine.__contains__)
        replace(engine, orjson.loads(orjson.dumps(kept)) if shared else kept)

    def _without(self, engine: Any, data: Any, gone: set[int]) -> Any:
        parts, rest = split(engine, data, self._parts.key_function(engine))
        return _joined(rest, parts, lambda q: q not in gone)


def _joined(rest: Any, parts: dict[int, Any], wanted: Callable[[int], bool]) -> Any:
    """A rule's state made again of its unroutable keys and the wanted partitions' cuts."""
    out = rest
    for q, got in parts.items():
        if wanted(q):
            out = merge(out, got)
    return out
