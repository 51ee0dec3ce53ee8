"""Keeps a process' change windows in step with the shared PostgreSQL (the cluster, docs/cluster.md).

Every process of the cluster keeps the changes that matter in memory (service.py): the pipeline's
maintenance stage reads them for every event. A change created, approved or cancelled through
another process' API is announced by the database at commit (NOTIFY `correlator_changes` with its
id, a trigger of the records schema); this feed LISTENs on a connection of its own and reads each
announced change again. After (re)connecting it reads every change once, so nothing saved while it
was not listening is missed, and again every `resync` seconds as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from prometheus_client.metrics import Counter

from correlator.changes.service import ChangeService
from correlator.store.postgres import safe_dsn

log = logging.getLogger(__name__)

CHANNEL = "correlator_changes"
SYNCED = Counter(
    "correlator_change_syncs_total",
    "Changes read again from the shared store after another process saved them (cluster)",
)


class ChangeFeed:
    def __init__(self, service: ChangeService, dsn: str, resync: float = 60.0, retry: float = 2.0) -> None:
        self._service = service
        self._dsn = dsn
        self.resync = resync
        self.retry = retry
        self._ids: set[int] = set()
        self._wake = asyncio.Event()
        self.listening = asyncio.Event()  # set while announcements are received (tests wait on it)

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the database down or restarting: the windows known stay in force
                log.warning(
                    "change feed from %s: %s: %s; retrying in %.0fs",
                    safe_dsn(self._dsn), type(e).__name__, e, self.retry,
                )  # fmt: skip
            self.listening.clear()
            await asyncio.sleep(self.retry)

    async def _follow(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        lost = asyncio.Event()

        def closed(_conn: Any) -> None:
            lost.set()
            self._wake.set()

        try:
            conn.add_termination_listener(closed)
            await conn.add_listener(CHANNEL, self._announced)
            SYNCED.inc(await self._service.sync())  # after LISTEN: a save meanwhile is announced too
            self.listening.set()
            loop = asyncio.get_running_loop()
            next_full = loop.time() + self.resync
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(next_full - loop.time(), 0.0))
                self._wake.clear()
                ids, self._ids = self._ids, set()
                if ids:
                    SYNCED.inc(await self._service.sync(ids))
                if loop.time() >= next_full:
                    await conn.execute("SELECT 1")  # a connection lost silently shows here
                    SYNCED.inc(await self._service.sync())
                    next_full = loop.time() + self.resync
            raise ConnectionError("the listening connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _announced(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.isdigit():
            self._ids.add(int(payload))
            self._wake.set()
