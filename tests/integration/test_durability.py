"""Nothing acknowledged is lost: SIGKILL during a burst, graceful SIGTERM, and explicit backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.app import make_app
from correlator.api.common import AppState
from correlator.clock import Clock
from correlator.collector import CollectorContext, create_collectors
from correlator.config import Config
from correlator.ingest import Ingest
from correlator.queue.journal import JournalQueue
from correlator.store.sqlite import SqliteEventStore
from tests.support.daemon import DaemonProcess, alive, child_pids

pytestmark = pytest.mark.integration


def ndjson(prefix: str, n: int) -> bytes:
    return b"".join(
        orjson.dumps({"id": f"{prefix}-{i}", "host": f"h{i % 7}", "type": "burst", "severity": "minor"})
        + b"\n"
        for i in range(n)
    )


async def test_sigkill_during_burst_loses_no_acknowledged_event(make_daemon):
    await sigkill_during_burst(make_daemon())


async def sigkill_during_burst(d: DaemonProcess) -> None:
    """8 clients post until 20,000 events are acknowledged, then SIGKILL; after a restart every
    acknowledged event is stored exactly once."""
    acked: list[str] = []
    stop = asyncio.Event()

    async def worker(w: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while not stop.is_set():
            prefix = f"w{w}-b{n}"
            n += 1
            try:
                async with session.post(
                    d.url + "/api/v1/events",
                    data=ndjson(prefix, 100),
                    headers={"Content-Type": "application/x-ndjson"},
                ) as resp:
                    if resp.status == 202:
                        acked.extend((await resp.json())["ids"])
            except (TimeoutError, aiohttp.ClientError):
                return  # the daemon is gone

    async with aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(worker(w, session)) for w in range(8)]
        while len(acked) < 20000:
            await asyncio.sleep(0.01)
        children = child_pids(d.proc.pid)  # HTTP workers, when http.workers is on
        d.proc.send_signal(signal.SIGKILL)  # mid-burst: requests in flight, batches mid-pipeline
        stop.set()
        await asyncio.gather(*workers)
    d.proc.wait()
    d.proc = None
    # Workers see the daemon's end and exit; until then they hold the port the restart binds.
    await asyncio.to_thread(d.wait_for, lambda: not any(alive(p) for p in children), 20, "workers to exit")
    assert len(acked) >= 20000

    d.start()  # same data directory: the journal is replayed

    def all_stored():
        return d.metric("correlator_queue_depth_events") == 0 and len(d.events("type=burst")) >= len(acked)

    await asyncio.to_thread(d.wait_for, all_stored, 60, "recovery of the journal")
    stored = [e["id"] for e in d.events("type=burst")]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"


def test_sigterm_drains_and_exits_zero(make_daemon):
    d = make_daemon()
    status, _, _ = d.request(
        "POST", "/api/v1/events", ndjson("t", 500), {"Content-Type": "application/x-ndjson"}
    )
    assert status == 202
    assert d.stop(signal.SIGTERM) == 0
    assert "stopped" in d.log()
    d.start()
    ids = {e["id"] for e in d.events("type=burst")}
    assert ids == {f"t-{i}" for i in range(500)}


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another process holding an SQLite file's write lock: the daemon's commits on it wait 5 s
    and fail with "database is locked", as they fail on a full disk."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("ROLLBACK")
    finally:
        db.close()


def acked_but_not_deleted(d: DaemonProcess, stack: contextlib.ExitStack) -> None:
    """An event stored and acked whose deletion from the journal fails: the journal's write lock is
    taken (kept until `stack` closes) while the event waits for the store, locked meanwhile too."""
    var = d.workdir / "var"
    with write_lock(var / "events.db"):
        assert d.post_json("/api/v1/events", [{"id": "a", "host": "h", "type": "T"}])[0] == 202
        stack.enter_context(write_lock(var / "journal.db"))
    d.wait_for(lambda: d.get("/readyz")[1]["checks"]["journal"] is False, 40, "the failed delete")


def test_the_journal_is_ready_again_by_itself_once_it_can_write(make_daemon):
    # No request arrives after the failure: a load balancer stopped sending on the 503.
    d = make_daemon()
    with contextlib.ExitStack() as locked:
        acked_but_not_deleted(d, locked)
    d.wait_for(lambda: d.get("/readyz")[0] == 200, 20, "/readyz to answer 200 by itself")


def test_sigterm_exits_while_the_journal_cannot_delete_acked_events(make_daemon):
    d = make_daemon()
    with contextlib.ExitStack() as locked:
        acked_but_not_deleted(d, locked)
        assert d.stop(signal.SIGTERM, timeout=30) == 0  # not killed after 30 s: it ended by itself
    assert "commits still failing at stop" in d.log()
    d.start()  # the acked event comes back from the journal, is found in the store, and is skipped
    d.wait_for(lambda: "redelivered events were already stored" in d.log(), what="the redelivery")
    assert [e["id"] for e in d.events()] == ["a"]
    d.wait_for(lambda: d.get("/readyz")[0] == 200, what="/readyz")


def not_sqlite(var: Path) -> None:
    (var / "journal.db").write_bytes(b"this is not an SQLite file" * 100)


def unreadable_incident(var: Path) -> None:
    with contextlib.closing(sqlite3.connect(var / "incidents.db")) as db, db:
        db.execute(
            "INSERT INTO incidents(status, priority, host, service, major, opened_at, updated_at, body)"
            " VALUES ('new', 'P3', 'h', '', 0, 0, 0, '{')"
        )


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (not_sqlite, r"DatabaseError: file is not a database\nwhile opening \S*/journal\.db"),
        (unreadable_incident, r"JSONDecodeError"),  # read after the incident store opened
    ],
)
def test_a_daemon_whose_state_cannot_be_opened_exits(make_daemon, spoil, error):
    # Exits (1, so that systemd's Restart=on-failure and an operator see it) rather than stay up
    # with nothing listening, kept alive by a connection thread left open.
    d = make_daemon()
    d.stop()
    spoil(d.workdir / "var")
    with pytest.raises(RuntimeError, match=r"daemon exited with 1:(.|\n)*" + error):
        d.start(timeout=20)


async def test_full_queue_answers_503_with_retry_after(tmp_path):
    # No pipeline consumer runs here, so the queue fills deterministically.
    config = Config()
    queue = JournalQueue(tmp_path / "journal.db", max_events=5, retry_after=3.0, fsync=False)
    store = SqliteEventStore(tmp_path / "events.db")
    async with contextlib.AsyncExitStack() as opened:  # closed also when an assertion fails
        await queue.open()
        opened.push_async_callback(queue.close)
        await store.open()
        opened.push_async_callback(store.close)
        state = AppState(store=store, queue=queue)
        app = make_app(state, config.http.max_body_bytes)
        ingest = Ingest(queue)
        ctx = CollectorContext(ingest.emit, ingest.retry_after, app, Clock(), config, tmp_path)
        state.collectors = create_collectors(config, ctx)
        client = await opened.enter_async_context(TestClient(TestServer(app)))
        headers = {"Content-Type": "application/x-ndjson"}
        resp = await client.post("/api/v1/events", data=ndjson("a", 5), headers=headers)
        assert resp.status == 202
        resp = await client.post("/api/v1/events", data=ndjson("b", 1), headers=headers)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3"
        assert "queue full" in (await resp.json())["error"]
        assert queue.depth() == 5  # the refused event was not half-accepted


def test_retention_job_removes_old_events(make_daemon):
    import time

    d = make_daemon(storage={"retention": "1d"})
    now = time.time()
    batch = [
        {"id": "old", "host": "h", "type": "T", "time": now - 2 * 86400},
        {"id": "new", "host": "h", "type": "T", "time": now - 3600},
    ]
    assert d.post_json("/api/v1/events", batch)[0] == 202
    d.wait_for(lambda: len(d.events()) == 2, what="both stored")
    d.stop()
    d.start()  # the retention job runs once at start, then every retention_interval
    d.wait_for(lambda: [e["id"] for e in d.events()] == ["new"], what="old event removed by retention")
    assert d.metric("correlator_retention_deleted_events_total") == 1
