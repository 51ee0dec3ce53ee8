"""/readyz turns 503 while the journal cannot write or the pipeline has been stuck too long, and says
which check failed; the stalled seconds are a gauge for the alert rule."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from correlator.api.app import make_app
from correlator.api.common import AppState
from correlator.progress import STALLED_SECONDS, Progress
from correlator.queue.journal import JournalQueue
from correlator.store.sqlite import SqliteEventStore


async def test_readyz_reports_a_stalled_pipeline_and_a_failing_journal(tmp_path):
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    queue = JournalQueue(tmp_path / "journal.db", max_events=10, retry_after=1.0, fsync=False)
    await queue.open()
    now, waiting = [0.0], [0]
    progress = Progress(lambda: waiting[0], stall_after=60.0, now=lambda: now[0])
    app = make_app(AppState(store=store, queue=queue, progress=progress), 1 << 20)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:

        async def ready() -> tuple[int, dict[str, bool]]:
            resp = await client.get("/readyz")
            return resp.status, (await resp.json())["checks"]

        assert await ready() == (200, {"store": True, "journal": True, "pipeline": True})
        waiting[0] = 5  # events wait ...
        now[0] = 60.0
        assert (await ready())[0] == 200  # ... 60 s without progress: not yet
        assert STALLED_SECONDS.collect()[0].samples[0].value == 60.0
        now[0] = 61.0
        assert await ready() == (503, {"store": True, "journal": True, "pipeline": False})
        progress.moved()  # a batch acknowledged
        assert (await ready())[0] == 200
        queue.failing = "database or disk is full"  # what a failed group commit leaves
        assert await ready() == (503, {"store": True, "journal": False, "pipeline": True})
    finally:
        await client.close()
        await queue.close()
        await store.close()
