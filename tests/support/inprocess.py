"""The daemon's HTTP side in this process: the real app, webhook collector, journal and stores.

Served by aiohttp on a free 127.0.0.1 port from a background thread with its own event loop, so
that synchronous tests (Hypothesis) talk to it with plain http.client, raw header bytes included.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web

import collectors.webhook
from correlator import door
from correlator.api.app import make_app
from correlator.api.auth import parse_tokens
from correlator.api.common import AppState
from correlator.api.connections import LIMITS, LimitedRunner
from correlator.changes.service import ChangeService
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.collector import CollectorContext
from correlator.config import Config
from correlator.event import Event
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.ingest import Ingest
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.queue.journal import JournalQueue
from correlator.records.sqlite import SqliteRecordStore
from correlator.store.sqlite import SqliteEventStore

T = TypeVar("T")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class InProcessDaemon:
    """start(webhook_settings, tokens) -> serving; request(...) -> Answer; journal_events(); stop()."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def start(self, webhook: Mapping[str, Any], tokens: Mapping[str, Any] | None = None) -> None:
        self._thread.start()
        self.run(self._start(webhook, tokens or {}))

    async def _start(self, webhook: Mapping[str, Any], tokens: Mapping[str, Any]) -> None:
        clock = Clock(time.time())
        self.events = SqliteEventStore(self.tmp / "events.db")
        await self.events.open()
        self.queue = JournalQueue(self.tmp / "journal.db", 100_000, 1.0, fsync=False)
        await self.queue.open()
        ingest = Ingest(self.queue, self.events)
        self.incidents = IncidentService(
            SqliteIncidentStore(self.tmp / "incidents.db"), parse_settings({}), clock
        )
        await self.incidents.open()
        self.records = SqliteRecordStore(self.tmp / "records.db")
        await self.records.open()
        changes = ChangeService(
            self.records, ChangeSettings(), clock, ingest.emit, self.incidents, ingest.full
        )
        await changes.open()
        problems = ProblemService(self.records, ProblemSettings(), clock, self.incidents)
        await problems.open()
        state = AppState(
            store=self.events,
            queue=self.queue,
            incidents=self.incidents,
            changes=changes,
            problems=problems,
            auth=parse_tokens(tokens),
            ingest=ingest,
        )
        self.app = make_app(state, 1 << 20)
        ctx = CollectorContext(ingest.emit, ingest.retry_after, self.app, clock, Config(), self.tmp)
        state.collectors = [collectors.webhook.create(webhook, ctx)]
        # The daemon's runner: its connection limits and its JSON answer to requests that are not HTTP.
        self._runner = LimitedRunner(self.app, self.app[LIMITS], access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return Answer(r.status, {k: v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def journal_events(self) -> list[Event]:
        """Everything made durable so far, decoded from the journal (and acknowledged)."""

        async def drain() -> list[Event]:
            out: list[Event] = []
            while self.queue.has_items():
                for item in await self.queue.get(100_000):
                    # What a restart would read, checked the same way (raises door.Refused).
                    out.extend(door.from_wire(d) for d in orjson.loads(item.payload))
                    await self.queue.ack(item.seq)
            return out

        return self.run(drain())

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self.queue.close()
            await self.incidents.close()
            await self.records.close()
            await self.events.close()

        if self._thread.is_alive():
            self.run(close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
