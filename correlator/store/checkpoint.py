"""WAL checkpoints on a thread and a connection of their own, beside a store's writer.

SQLite's automatic checkpoint runs in the commit that crosses its interval, on the writer's thread:
the batch that triggers it waits for the WAL to be copied into the database file and fsynced. Here
the writer runs with `wal_autocheckpoint=0` and tells the checkpointer after each write; once the
WAL holds more than `soft_bytes` not yet copied, a `PRAGMA wal_checkpoint(PASSIVE)` runs on the
checkpointer's thread while the writer goes on. A passive checkpoint never waits for a reader or a
writer, so it never blocks the writer.

The WAL restarts from its start only when a write begins with every frame copied. If checkpoints
keep ending after the writer appended more (the checkpointer falls behind), or a reader keeps an
old snapshot, the file would grow without bound; past `hard_bytes` the writer therefore waits for
the checkpoint under way and, if frames are still left, for one more, and that wait is counted.
A reader's snapshot still pins the frames after it, as it does with SQLite's own checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.metrics import Counter

from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

CHECKPOINTS = Counter(
    "correlator_store_checkpoints_total", "WAL checkpoints of a SQLite store run beside its writer", ["store"]
)
CHECKPOINT_STALLS = Counter(
    "correlator_store_checkpoint_stalls_total",
    "SQLite store writes that waited for a WAL checkpoint: the WAL had passed its hard bound",
    ["store"],
)

# The wal-index header at the start of the -shm file (https://www.sqlite.org/walformat.html,
# "The WAL-Index Header"), in the host's byte order: two copies of a 48-byte header (the page size
# at 14, 1 meaning 64 KiB; mxFrame, the frames in the WAL, at 16), then nBackfill, the frames
# already copied into the database, at 96. Every SQLite version sharing a file reads this layout,
# so it cannot change; reading it costs one pread, where asking SQLite would take the writer's
# thread or a checkpoint.
_HEADER = struct.Struct("=14xHI76xI")
_FRAME_HEADER = 24


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite file at `path`, whose writer runs `wrote()` after each write;
    `store` names it in the metrics.

    Its connection opens on the first checkpoint, so a store only read never opens one.
    """

    def __init__(
        self,
        path: Path,
        soft_bytes: int,
        hard_bytes: int,
        store: str,
        fallback: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        if not 0 < soft_bytes <= hard_bytes:
            raise ValueError("need 0 < soft_bytes <= hard_bytes")
        self.path = path
        self._real = os.path.realpath(path)
        self._fallback = fallback
        self._fallen_back = False
        self._closed = False
        self.soft_bytes = soft_bytes
        self.hard_bytes = hard_bytes
        self._shm: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._running: asyncio.Future[tuple[int, int, int]] | None = None
        self.checkpoints = 0  # run beside the writer
        self.stalls = 0  # writes that waited for one
        self._checkpoints_metric = CHECKPOINTS.labels(store)
        self._stalls_metric = CHECKPOINT_STALLS.labels(store)

    def open(self) -> None:
        """With the store's writer (again, after a close)."""
        self._closed = False

    def wal(self) -> tuple[int, int] | None:
        """(bytes of the WAL in use, bytes of it not yet copied into the database), from the
        wal-index header; (0, 0) when there is no WAL index yet; None when it cannot be read."""
        if self._closed:
            return 0, 0
        if self._shm is None:
            try:
                # Beside the real file: SQLite follows a symlinked database to its target.
                self._shm = os.open(f"{self._real}-shm", os.O_RDONLY)
            except OSError:
                return None
        raw = os.pread(self._shm, _HEADER.size, 0)
        if len(raw) < _HEADER.size:
            return 0, 0
        page, frames, backfilled = _HEADER.unpack(raw)
        if page == 0:  # no frame written yet
            return 0, 0
        # A torn read (the writer updating the header meanwhile) only moves a checkpoint by a write.
        frame = (65536 if page == 1 else page) + _FRAME_HEADER
        return frames * frame, max(frames - backfilled, 0) * frame

    async def wrote(self) -> None:
        """After a write: start a checkpoint once the WAL has `soft_bytes` not yet copied; past
        `hard_bytes`, wait until the WAL can restart."""
        if self._fallen_back:
            return
        wal = self.wal()
        if wal is None:
            # Without the index nothing here can tell how far the WAL is copied, so nothing could
            # bound it: SQLite's own checkpoint in the writer's commit takes over, at the same size.
            self._fallen_back = True
            log.warning(
                "cannot read the WAL index of %s; SQLite checkpoints in the writer instead", self.path
            )
            if self._fallback is not None:
                await self._fallback(self.soft_bytes)
            return
        used, pending = wal
        if pending >= self.soft_bytes and self._running is None:
            self._start()
        if used < self.hard_bytes or (self._running is None and not pending):
            return  # (nothing left to copy and still past: a reader's snapshot holds the WAL)
        # Past the hard bound the WAL did not restart: each checkpoint ended after the writer had
        # appended more. With the writer waiting, one that copies every frame lets its next write
        # start the WAL over.
        self.stalls += 1
        self._stalls_metric.inc()
        await self.drain()
        if (self.wal() or (0, 0))[1]:
            self._start()
            await self.drain()

    async def drain(self) -> None:
        """Wait for the checkpoint under way, if any (its failure is logged, not raised)."""
        running = self._running
        if running is not None:
            await asyncio.wait((running,))

    def _start(self) -> None:
        if self._closed:  # a write that waited for a checkpoint while the store closed
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="wal-checkpoint")
        loop = asyncio.get_running_loop()
        running = self._running = loop.run_in_executor(self._thread, self._checkpoint)
        running.add_done_callback(self._done)

    def _done(self, running: asyncio.Future[tuple[int, int, int]]) -> None:
        if self._running is running:
            self._running = None
        if running.cancelled():
            return
        error = running.exception()
        if error is None:
            self.checkpoints += 1
            self._checkpoints_metric.inc()
        else:  # a full disk, say: the writer's next checkpoint or its final one copies the frames
            _limited.warning("wal-checkpoint", "WAL checkpoint of %s failed: %s", self.path, error)

    def _checkpoint(self) -> tuple[int, int, int]:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    async def close(self) -> None:
        """Wait for the checkpoint under way and close the connection and thread. The writer's
        connection, closed last, makes the final checkpoint (SQLite's, on the last close)."""
        self._closed = True
        await self.drain()
        if self._thread is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
            self._thread.shutdown()
            self._thread = None
        if self._shm is not None:
            os.close(self._shm)
            self._shm = None
