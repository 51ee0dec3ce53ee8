"""The collectors' way in (correlator/ingest.py) against a real journal and SQLite store: events
orjson refuses are set aside in the dead-letter table, the rest of the batch is queued."""

from __future__ import annotations

import contextlib
from pathlib import Path

from correlator.deadletter import UNSERIALISABLE, DeadLetter
from correlator.event import Event, Severity
from correlator.ingest import Ingest
from correlator.queue.journal import JournalQueue
from correlator.store.sqlite import SqliteEventStore

T0 = 1_800_000_000.0


def ev(name: str, message: str = "") -> Event:
    return Event(name, T0, T0, "test", "h", "T", Severity.MINOR, message=message)


class CountingStore(SqliteEventStore):
    """The real SQLite store, counting its dead-letter writes (each is a transaction and an fsync)."""

    writes = 0

    async def add_dead_letters(self, items: list[DeadLetter]) -> int:
        self.writes += 1
        return await super().add_dead_letters(items)


async def test_a_batchs_unserialisable_events_are_set_aside_in_one_write(tmp_path: Path) -> None:
    queue = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    store = CountingStore(tmp_path / "events.db")
    async with contextlib.AsyncExitStack() as opened:
        await queue.open()
        opened.push_async_callback(queue.close)
        await store.open()
        opened.push_async_callback(store.close)
        batch = [ev(f"e{i}", "lone \udc80 surrogate" if i % 2 else "fine") for i in range(10)]
        await Ingest(queue, store).emit(batch, "test")
        assert store.writes == 1
        page = await store.dead_letters(100, None, None)
        assert sorted(d.event_id for d in page.items) == [f"e{i}" for i in (1, 3, 5, 7, 9)]
        assert {d.reason for d in page.items} == {UNSERIALISABLE}
        assert queue.depth() == 5
