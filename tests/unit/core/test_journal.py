"""The durable journal queue: group commit, bounded depth, ack, and recovery after a restart."""

from __future__ import annotations

import asyncio

import pytest

from correlator.errors import QueueFull, ShuttingDown
from correlator.queue.journal import JournalQueue


async def open_queue(tmp_path, max_events=100):
    q = JournalQueue(tmp_path / "journal.db", max_events=max_events, retry_after=2.0, fsync=False)
    recovered = await q.open()
    return q, recovered


async def test_put_get_ack(tmp_path):
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
    await q.close()


async def test_get_respects_max_events_but_returns_at_least_one(tmp_path):
    q, _ = await open_queue(tmp_path)
    for _i in range(3):
        await q.put(b"[0,0,0]", 3)
    first = await q.get(max_events=4)
    assert len(first) == 1
    rest = await q.get(max_events=2)  # a single item larger than the limit still comes out
    assert len(rest) == 1
    await q.close()


async def test_concurrent_puts_share_a_commit(tmp_path):
    q, _ = await open_queue(tmp_path)
    seqs = await asyncio.gather(*(q.put(b"[%d]" % i, 1) for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    await q.close()


async def test_unacked_items_survive_reopen_and_acked_ones_do_not(tmp_path):
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
    await q2.close()


async def test_full_queue_refuses_with_retry_after(tmp_path):
    q, _ = await open_queue(tmp_path, max_events=5)
    await q.put(b"[1,1,1,1]", 4)
    with pytest.raises(QueueFull) as e:
        await q.put(b"[1,1]", 2)
    assert e.value.retry_after == 2.0
    items = await q.get(10)
    await q.ack(items[-1].seq)
    await q.put(b"[1,1]", 2)  # room again once processed
    await q.close()


async def test_a_batch_larger_than_the_queue_is_taken_when_empty(tmp_path):
    # otherwise a single oversized batch could never be accepted at all
    q, _ = await open_queue(tmp_path, max_events=5)
    await q.put(b"[" + b"1," * 9 + b"1]", 10)
    await q.close()


async def test_no_puts_after_close_for_input(tmp_path):
    q, _ = await open_queue(tmp_path)
    q.close_for_input()
    with pytest.raises(ShuttingDown):
        await q.put(b"[1]", 1)
    await q.close()
