"""The durable journal queue: group commit, bounded depth, ack, and recovery after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from correlator.errors import QueueFull, ShuttingDown, StorageUnavailable
from correlator.queue import journal
from correlator.queue.journal import JournalQueue
from tests.support.threads import no_thread_left


@pytest.fixture
async def open_queue():
    """open_queue(dir, max_events) -> (queue, recovered); every queue opened is closed after the test,
    also when it fails (an open aiosqlite connection keeps the interpreter from exiting)."""
    opened: list[JournalQueue] = []

    async def factory(tmp_path, max_events=100, retry_after=2.0):
        q = JournalQueue(tmp_path / "journal.db", max_events=max_events, retry_after=retry_after, fsync=False)
        opened.append(q)
        return q, await q.open()

    yield factory
    for q in opened:
        await q.close()


async def test_put_get_ack(tmp_path, open_queue):
    q, recovered = await open_queue(tmp_path)
    assert recovered == 0
    s1 = await q.put(b"[1]", 1)
    s2 = await q.put(b"[2,3]", 2)
    assert s2 > s1
    assert q.depth() == 3
    items = await q.get(max_events=10)
    assert [(i.payload, i.count) for i in items] == [(b"[1]", 1), (b"[2,3]", 2)]
    await q.ack(items[-1].seq)
    assert q.depth() == 0


async def test_get_respects_max_events_but_returns_at_least_one(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    for _i in range(3):
        await q.put(b"[0,0,0]", 3)
    first = await q.get(max_events=4)
    assert len(first) == 1
    rest = await q.get(max_events=2)  # a single item larger than the limit still comes out
    assert len(rest) == 1


async def test_concurrent_puts_share_a_commit(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    seqs = await asyncio.gather(*(q.put(b"[%d]" % i, 1) for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))


async def test_unacked_items_survive_reopen_and_acked_ones_do_not(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    for i in range(4):
        await q.put(b"[%d]" % i, 1)
    items = await q.get(max_events=2)
    await q.ack(items[-1].seq)
    await q.close()
    q2, recovered = await open_queue(tmp_path)
    assert recovered == 2
    items = await q2.get(max_events=10)
    assert [i.payload for i in items] == [b"[2]", b"[3]"]
    assert await q2.put(b"[4]", 1) > items[-1].seq  # sequence continues after the recovered items


async def test_full_queue_refuses_with_retry_after(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path, max_events=5)
    await q.put(b"[1,1,1,1]", 4)
    with pytest.raises(QueueFull) as e:
        await q.put(b"[1,1]", 2)
    assert e.value.retry_after == 2.0
    items = await q.get(10)
    await q.ack(items[-1].seq)
    await q.put(b"[1,1]", 2)  # room again once processed


async def test_a_batch_larger_than_the_queue_is_taken_when_empty(tmp_path, open_queue):
    # otherwise a single oversized batch could never be accepted at all
    q, _ = await open_queue(tmp_path, max_events=5)
    await q.put(b"[" + b"1," * 9 + b"1]", 10)


async def test_no_puts_after_close_for_input(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    q.close_for_input()
    with pytest.raises(ShuttingDown):
        await q.put(b"[1]", 1)


def fail_inserts_of(path, payload: bytes) -> None:
    """Make SQLite refuse to journal `payload`, as a full disk or an I/O error would: the group
    commit that holds it fails and is rolled back (a trigger: the real SQLite, a real error)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON journal WHEN NEW.payload = x'{payload.hex()}'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def fail_deletes(path) -> None:
    """Make SQLite refuse to delete acked items, as a full disk or a locked file would."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON journal BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )


def stop_failing(path) -> None:
    """The disk has room again: every refusal made by fail_inserts_of or fail_deletes is dropped."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")


async def until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_failed_group_commit_fails_its_puts_and_the_journal_keeps_working(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    await q.put(b"[0]", 1)
    fail_inserts_of(tmp_path / "journal.db", b"[bad]")
    with pytest.raises(StorageUnavailable, match="disk is full"):  # pushed back: 503, not a 500
        await asyncio.wait_for(q.put(b"[bad]", 2), 5)  # the caller hears it: nothing is acknowledged
    assert q.depth() == 1  # its reservation is given back
    assert await asyncio.wait_for(q.put(b"[1]", 1), 5) > 0  # rolled back: the next commit works
    items = await q.get(max_events=10)
    assert [i.payload for i in items] == [b"[0]", b"[1]"]
    await q.ack(items[0].seq)
    assert q.depth() == 1
    await q.close()
    q2, recovered = await open_queue(tmp_path)
    assert recovered == 1  # [1] is on disk, [bad] never was, [0] was acked
    assert [i.payload for i in await q2.get(max_events=10)] == [b"[1]"]


async def test_every_put_of_a_failed_group_commit_fails_with_it(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path)
    fail_inserts_of(tmp_path / "journal.db", b"[bad]")
    # Put while the writer waits: all four are written by one group commit, which one row spoils.
    puts = [q.put(b"[bad]", 1), *(q.put(b"[%d]" % i, 1) for i in range(3))]
    results = await asyncio.wait_for(asyncio.gather(*puts, return_exceptions=True), 5)
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    assert q.depth() == 0 and not q.has_items()
    await q.close()
    _, recovered = await open_queue(tmp_path)
    assert recovered == 0


async def test_the_journal_is_ready_again_by_itself_once_its_acked_items_can_be_deleted(tmp_path, open_queue):
    # Nothing arrives after the failure: no put, ack or close wakes the writer, yet it tries again.
    q, _ = await open_queue(tmp_path, retry_after=0.05)
    await q.put(b"[0]", 1)
    fail_deletes(tmp_path / "journal.db")
    await q.ack((await q.get(max_events=10))[-1].seq)
    await until(lambda: not q.healthy(), "the failed delete")
    assert "disk I/O error" in (q.failing or "")
    stop_failing(tmp_path / "journal.db")
    await until(q.healthy, "the journal to be ready again")
    await q.close()
    _, recovered = await open_queue(tmp_path)
    assert recovered == 0  # the retry deleted the acked item


async def test_the_journal_is_ready_again_by_itself_after_a_failed_put(tmp_path, open_queue):
    # The refused put is the sender's to retry: the writer proves the journal writes with a commit
    # of its own, or a load balancer that stopped sending on the 503 would never send it one.
    q, _ = await open_queue(tmp_path, retry_after=0.05)
    fail_inserts_of(tmp_path / "journal.db", b"[bad]")
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(q.put(b"[bad]", 1), 5)
    await until(q.healthy, "the journal to be ready again")
    await q.close()
    _, recovered = await open_queue(tmp_path)
    assert recovered == 0  # the writer's own commit left nothing behind


async def test_the_writers_own_retries_are_paced_even_with_retry_after_0(tmp_path, open_queue):
    """retry_after: 0 is a valid setting (clients retry at once); the writer's own retries of a
    commit that keeps failing still wait a floor between them instead of spinning."""
    q, _ = await open_queue(tmp_path, retry_after=0.0)
    await q.put(b"[0]", 1)
    fail_deletes(tmp_path / "journal.db")
    begins = 0
    execute = q._db.execute

    def counting(sql, *args):
        nonlocal begins
        begins += sql == "BEGIN"
        return execute(sql, *args)

    q._db.execute = counting
    try:
        await q.ack((await q.get(max_events=10))[-1].seq)
        await until(lambda: not q.healthy(), "the failed delete")
        await asyncio.sleep(0.5)  # a window to count retries in, not a wait for an outcome
        assert 1 <= begins <= 0.5 / journal.RETRY_FLOOR + 2, begins
    finally:
        stop_failing(tmp_path / "journal.db")
    await until(q.healthy, "the journal to be ready again")


async def test_close_is_bounded_while_acked_items_cannot_be_deleted(tmp_path, open_queue):
    q, _ = await open_queue(tmp_path, retry_after=0.05)
    q.finish_seconds = 0.5
    await q.put(b"[0]", 1)
    await q.put(b"[1]", 1)
    fail_deletes(tmp_path / "journal.db")
    try:
        await q.ack((await q.get(max_events=1))[-1].seq)
        await until(lambda: not q.healthy(), "the failed delete")
        await asyncio.wait_for(q.close(), 5)
    finally:
        stop_failing(tmp_path / "journal.db")  # the fixture's close must not hang either
    q2, recovered = await open_queue(tmp_path)
    assert recovered == 2  # the acked one comes back too: the store has it, so the runner skips it
    assert [(i.payload, i.redelivered) for i in await q2.get(max_events=10)] == [
        (b"[0]", True),
        (b"[1]", True),
    ]


async def test_a_journal_that_cannot_be_opened_leaves_no_thread_behind(tmp_path):
    # The daemon exits on the error, which its service manager restarts, only if nothing is left.
    (tmp_path / "journal.db").write_bytes(b"this is not an SQLite file" * 100)
    q = JournalQueue(tmp_path / "journal.db", max_events=10, retry_after=1.0, fsync=False)
    async with no_thread_left():
        with pytest.raises(sqlite3.DatabaseError, match="not a database") as e:
            await q.open()
    assert str(tmp_path / "journal.db") in "\n".join(e.value.__notes__)  # which file, in the log
