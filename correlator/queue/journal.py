"""The embedded durable queue: an SQLite journal (WAL) written by group commit.

Concurrent `put`s made while one commit runs are written together by the next one, so fsync cost
is shared by every request in flight. Unacked items are kept in memory too, so the pipeline reads
them without touching the disk; the journal is only read back after a restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from pathlib import Path

import aiosqlite

from correlator import metrics
from correlator.errors import QueueFull, ShuttingDown, StorageUnavailable
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.queue import QueueItem, take_batch

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)  # a failing journal is retried every retry_after
RETRY_FLOOR = 0.1  # seconds between the writer's own retries at least, whatever retry_after says

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""


class JournalQueue:
    def __init__(self, path: Path, max_events: int, retry_after: float, fsync: bool = True) -> None:
        self._path = path
        self._max_events = max_events
        self._retry_after = retry_after
        self._fsync = fsync
        self._db: aiosqlite.Connection | None = None
        self._pending: list[tuple[bytes, int, list[Event] | None, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._items: collections.deque[QueueItem] = collections.deque()
        self._available = asyncio.Event()
        self._depth = 0  # reserved at put() so the bound holds while commits are in flight
        self._next_seq = 1
        self._inflight: collections.deque[tuple[int, int]] = (
            collections.deque()
        )  # (seq, count) taken by get()
        self._ack_upto = 0  # highest seq acked; deleted from disk by the next group commit
        self._deleted_upto = 0
        self._accepting = True
        self._closing = False
        self.failing: str | None = None  # the last group commit's error until one succeeds (/readyz)
        self.finish_seconds = 5.0  # on close, for acked items whose deletion keeps failing
        metrics.QUEUE_CAPACITY.set(max_events)

    async def open(self) -> int:
        """Open the journal and reload what was accepted but never acked; returns that event count."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            await self._db.executescript(_SCHEMA)
            recovered = 0
            async with self._db.execute("SELECT seq, count, payload FROM journal ORDER BY seq") as cur:
                async for seq, count, payload in cur:
                    self._items.append(QueueItem(seq, bytes(payload), count, redelivered=True))
                    recovered += count
                    self._next_seq = seq + 1
            async with self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal") as cur:
                row = await cur.fetchone()
                self._next_seq = max(self._next_seq, (row[0] if row else 0) + 1)
        except BaseException as e:
            # Its thread is no daemon: left open it would keep the process alive after the error.
            await self._db.close()
            self._db = None
            e.add_note(f"while opening {self._path}")
            raise
        self._depth = recovered
        if self._items:
            self._available.set()
            log.info("journal: recovered %d unprocessed events in %d batches", recovered, len(self._items))
        metrics.QUEUE_DEPTH.set(self._depth)
        self._writer = asyncio.create_task(self._write_loop(), name="journal-writer")
        return recovered

    async def put(self, payload: bytes, count: int, events: list[Event] | None = None) -> int:
        if not self._accepting:
            raise ShuttingDown("the daemon is shutting down")
        if self._depth + count > self._max_events and self._depth > 0:
            raise QueueFull(self._depth, self._max_events, self._retry_after)
        self._depth += count
        metrics.QUEUE_DEPTH.set(self._depth)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, count, events, fut))
        self._wake.set()
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The client went away; the item may still become durable and will be processed.
            raise

    async def _write_loop(self) -> None:
        assert self._db is not None
        retry = False  # the last commit failed: try again after retry_after even if nothing wakes us
        while True:
            if self._closing and not self._pending and self._ack_upto == self._deleted_upto:
                return
            if retry:
                # Nobody may come to wake the writer: a load balancer stops sending on /readyz's
                # 503, and the runner has acked everything. Its own retry clears the failure.
                with contextlib.suppress(TimeoutError):  # a floor: retry_after may be 0
                    await asyncio.wait_for(self._wake.wait(), max(self._retry_after, RETRY_FLOOR))
            else:
                await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            ack_upto = self._ack_upto
            if not batch and ack_upto == self._deleted_upto and not retry:
                continue
            rows = []
            for payload, count, _, _ in batch:
                rows.append((self._next_seq, count, payload))
                self._next_seq += 1
            t0 = time.perf_counter()
            try:
                # One transaction: new items and acked deletions share one fsync.
                await self._db.execute("BEGIN")
                if rows:
                    await self._db.executemany(
                        "INSERT INTO journal(seq, count, payload) VALUES (?, ?, ?)", rows
                    )
                if ack_upto > self._deleted_upto:
                    await self._db.execute("DELETE FROM journal WHERE seq <= ?", (ack_upto,))
                elif not rows:
                    # A retry with nothing to write (the refused puts are their senders' to send
                    # again): a row written and deleted in one commit, which writes and syncs a
                    # page like any other, tells whether the journal writes again.
                    await self._db.execute("INSERT INTO journal(seq, count, payload) VALUES (0, 0, x'')")
                    await self._db.execute("DELETE FROM journal WHERE seq = 0")
                await self._db.execute("COMMIT")
            except Exception as e:
                _limited.error("journal-commit", "journal: group commit failed: %s", e)
                self.failing = str(e)
                retry = True
                with contextlib.suppress(Exception):  # the original error is what matters
                    await self._db.execute("ROLLBACK")
                # Disk full or an I/O error is not the sender's doing: push back (503 + Retry-After).
                self._refuse(batch, StorageUnavailable(str(e), self._retry_after))
                continue
            except asyncio.CancelledError:  # close() gave up on a commit that does not end
                self._refuse(batch, ShuttingDown("the daemon is shutting down"))
                raise
            if retry:
                log.info("journal: group commits succeed again")
            retry = False
            self.failing = None
            self._deleted_upto = ack_upto
            if not rows:
                continue
            metrics.JOURNAL_COMMIT_SECONDS.observe(time.perf_counter() - t0)
            for (seq, count, payload), (_, _, events, fut) in zip(rows, batch, strict=True):
                self._items.append(QueueItem(seq, payload, count, events))
                if not fut.done():
                    fut.set_result(seq)
            self._available.set()

    def _refuse(
        self, batch: list[tuple[bytes, int, list[Event] | None, asyncio.Future[int]]], error: Exception
    ) -> None:
        for _, count, _, fut in batch:
            self._depth -= count
            if not fut.done():
                fut.set_exception(error)
        metrics.QUEUE_DEPTH.set(self._depth)

    async def get(self, max_events: int) -> list[QueueItem]:
        out = await take_batch(self._items, self._available, max_events)
        self._inflight.extend((item.seq, item.count) for item in out)
        return out

    def has_items(self) -> bool:
        return bool(self._items)

    async def ack(self, seq: int) -> None:
        while self._inflight and self._inflight[0][0] <= seq:
            self._depth -= self._inflight.popleft()[1]
        self._ack_upto = max(self._ack_upto, seq)
        metrics.QUEUE_DEPTH.set(self._depth)
        self._wake.set()

    def depth(self) -> int:
        return self._depth

    def healthy(self) -> bool:
        return self.failing is None

    def retry_after(self) -> float | None:
        return self._retry_after if self._depth >= self._max_events else None

    def close_for_input(self) -> None:
        self._accepting = False
        self._wake.set()

    async def close(self) -> None:
        self.close_for_input()
        self._closing = True
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self.finish_seconds)
            except TimeoutError:
                # A commit that keeps failing at stop is given up. Its puts, and any still in
                # hand, are refused (not acknowledged: their senders send them again). Acked items
                # whose deletion failed come back at the next start, as after a crash between the
                # store's commit and the journal's: found in the store by id, they are acked
                # without running the pipeline again (runner._not_yet_stored, the "stored, not yet
                # acked" row of docs/architecture.md's durability table), and a dead-lettered one is
                # set aside again under the same key, so kept once.
                log.error("journal: commits still failing at stop (%s); given up", self.failing)
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
                self._refuse(self._pending, ShuttingDown("the daemon is shutting down"))
                self._pending = []
            self._writer = None
        if self._db is not None:
            await self._db.close()
            self._db = None
