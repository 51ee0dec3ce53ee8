"""The HTTP workers' frames channel (correlator/workerlink.py) between a real LinkClient and a
LinkServer journaling into a real JournalQueue: what an authenticated peer may and may not send."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from correlator.errors import ShuttingDown
from correlator.event import Event, Severity, dumps_events
from correlator.ingest import Ingest
from correlator.metrics import EVENTS_REJECTED
from correlator.queue.journal import JournalQueue
from correlator.workerlink import (
    BAD,
    BATCH,
    BATCH_HEAD,
    HEADER,
    HELLO,
    OK,
    REFUSED,
    LinkClient,
    LinkServer,
    PushedBack,
)

SECRET = "s3cret"


def events(prefix: str, n: int) -> list[Event]:
    return [
        Event(
            f"{prefix}-{i}",
            1.7e9,
            1.7e9,
            "webhook:generic",
            f"h{i}",
            "burst",
            Severity.MINOR,
            attributes={"i": i},
        )
        for i in range(n)
    ]


@dataclass
class Channel:
    path: str
    queue: JournalQueue
    server: LinkServer
    counts: list[int]


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[Channel]:
    queue = JournalQueue(tmp_path / "journal.db", max_events=1000, retry_after=2.0, fsync=False)
    await queue.open()
    counts: list[int] = []
    server = LinkServer(SECRET, Ingest(queue).put_serialised, counts.append)
    path = str(tmp_path / "frames.sock")
    listening = await asyncio.start_unix_server(server.handle, path=path)
    try:
        yield Channel(path, queue, server, counts)
    finally:
        listening.close()
        await server.drain()
        await queue.close()


async def journaled(queue: JournalQueue) -> list[str]:
    ids: list[str] = []
    while queue.depth() > len(ids):
        for item in await queue.get(10_000):
            ids.extend(d["id"] for d in orjson.loads(item.payload))
    return ids


async def hello(path: str, secret: str = SECRET) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(HEADER.pack(len(secret), 0, HELLO) + secret.encode())
    assert HEADER.unpack(await reader.readexactly(HEADER.size)) == (0, 0, OK)
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_batches_are_journaled_and_answered_and_workers_counted(channel: Channel) -> None:
    client = LinkClient(channel.path, SECRET)
    await client.connect()
    for b in range(3):
        await client.put(dumps_events(events(f"b{b}", 10)), 10, "webhook:generic")
    assert len(await journaled(channel.queue)) == 30
    assert channel.server.connected == 1 and channel.counts == [1]
    await client.close()
    await asyncio.wait_for(_until(lambda: channel.counts[-1] == 0), 5)


async def test_a_batch_larger_than_a_frame_goes_as_several(channel: Channel) -> None:
    client = LinkClient(channel.path, SECRET)
    batch = events("big", 40)
    await client.put(dumps_events(batch), 40, "webhook:generic", split=2000)
    assert sorted(await journaled(channel.queue)) == sorted(e.id for e in batch)
    await client.close()


async def test_a_full_queue_is_pushed_back_with_its_retry_after_before_parsing(tmp_path: Path) -> None:
    queue = JournalQueue(tmp_path / "journal.db", max_events=5, retry_after=3.0, fsync=False)
    await queue.open()
    server = LinkServer(SECRET, Ingest(queue).put_serialised, lambda n: None)
    listening = await asyncio.start_unix_server(server.handle, path=str(tmp_path / "f.sock"))
    client = LinkClient(str(tmp_path / "f.sock"), SECRET)
    rejected = EVENTS_REJECTED.labels("webhook:generic", "queue_full")
    try:
        await client.put(dumps_events(events("a", 3)), 3, "webhook:generic")
        with pytest.raises(PushedBack) as e:  # no room for 5 more
            await client.put(dumps_events(events("b", 5)), 5, "webhook:generic")
        assert e.value.reason == "queue_full" and e.value.retry_after == 3
        await client.put(dumps_events(events("c", 2)), 2, "webhook:generic")  # full now
        before, malformed = rejected._value.get(), REFUSED.labels("malformed")._value.get()
        # Not even events: parsed, it would be refused as malformed; full, it is never parsed.
        with pytest.raises(PushedBack) as e:
            await client.put(b"[not events]", 3, "webhook:generic")
        assert e.value.reason == "queue_full" and e.value.retry_after == 3
        assert rejected._value.get() == before + 3
        assert REFUSED.labels("malformed")._value.get() == malformed
        await queue.ack((await queue.get(100))[-1].seq)  # drained: room again
        queue.close_for_input()
        with pytest.raises(ShuttingDown):
            await client.put(dumps_events(events("d", 1)), 1, "webhook:generic")
    finally:
        await client.close()
        listening.close()
        await queue.close()


async def test_a_wrong_payload_from_a_worker_is_refused_and_nothing_journaled(channel: Channel) -> None:
    reader, writer = await hello(channel.path)
    before = REFUSED.labels("malformed")._value.get()
    for rid, (count, payload) in enumerate(
        [(2, dumps_events(events("x", 3))), (1, b'[{"id": "only-an-id"}]'), (1, b"[1]"), (1, b"[nope")], 1
    ):
        body = BATCH_HEAD.pack(count, 15) + b"webhook:generic" + payload
        writer.write(HEADER.pack(len(body), rid, BATCH) + body)
        assert HEADER.unpack(await reader.readexactly(HEADER.size)) == (0, rid, BAD)
    assert channel.queue.depth() == 0
    assert REFUSED.labels("malformed")._value.get() == before + 4
    writer.close()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (HEADER.pack(1 << 30, 7, BATCH), "too_large"),  # a gigabyte announced: never read
        (HEADER.pack(3, 7, 99) + b"abc", "malformed"),  # no such kind
        (HEADER.pack(3, 7, BATCH) + b"abc", "malformed"),  # shorter than a batch's head
        (HEADER.pack(8, 7, BATCH) + BATCH_HEAD.pack(0, 1) + b"s" + b"[]", "malformed"),  # no events
        (HEADER.pack(9, 7, BATCH) + BATCH_HEAD.pack(1, 2) + b"\xff\xfe" + b"[]", "malformed"),  # not text
    ],
)
async def test_a_bad_frame_from_an_authenticated_peer_closes_only_its_connection(
    channel: Channel, frame: bytes, reason: str
) -> None:
    other = LinkClient(channel.path, SECRET)
    await other.connect()
    before = REFUSED.labels(reason)._value.get()
    reader, writer = await hello(channel.path)
    writer.write(frame)
    assert await closed(reader)
    assert REFUSED.labels(reason)._value.get() == before + 1
    # The server and the other worker go on.
    await other.put(dumps_events(events("ok", 2)), 2, "webhook:generic")
    assert await journaled(channel.queue) == ["ok-0", "ok-1"]
    await other.close()


async def test_a_client_whose_secret_is_wrong_cannot_send(channel: Channel) -> None:
    client = LinkClient(channel.path, "not-it")
    with pytest.raises(ShuttingDown):
        await client.put(dumps_events(events("x", 1)), 1, "webhook:generic")
    assert channel.queue.depth() == 0 and channel.server.connected == 0


async def test_the_client_reconnects_after_the_channel_breaks(channel: Channel) -> None:
    client = LinkClient(channel.path, SECRET)
    await client.put(dumps_events(events("a", 1)), 1, "webhook:generic")
    writer = client._writer
    assert writer is not None
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    await asyncio.wait_for(_until(lambda: channel.server.connected == 0), 5)
    await client.put(dumps_events(events("b", 1)), 1, "webhook:generic")
    assert sorted(await journaled(channel.queue)) == ["a-0", "b-0"]
    await client.close()


async def _until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await asyncio.sleep(0.01)


async def test_a_stranger_cannot_make_the_daemon_read_a_large_frame(channel: Channel) -> None:
    before = REFUSED.labels("too_large")._value.get()
    reader, writer = await asyncio.open_unix_connection(channel.path)
    writer.write(HEADER.pack(1 << 20, 0, HELLO))  # a megabyte "secret": refused before reading it
    assert await closed(reader)
    assert REFUSED.labels("too_large")._value.get() == before + 1
    assert channel.server.connected == 0
    writer.close()


async def test_an_unexpected_failure_taking_a_batch_is_still_answered(tmp_path: Path) -> None:
    async def broken(payload: bytes, count: int, source: str) -> None:
        raise RuntimeError("disk controller on fire")

    server = LinkServer(SECRET, broken, lambda n: None)
    listening = await asyncio.start_unix_server(server.handle, path=str(tmp_path / "f.sock"))
    client = LinkClient(str(tmp_path / "f.sock"), SECRET)
    try:
        async with asyncio.timeout(10):  # without an answer the client would wait forever
            with pytest.raises(ShuttingDown):
                await client.put(dumps_events(events("a", 1)), 1, "webhook:generic")
    finally:
        await client.close()
        listening.close()


async def test_a_connection_ending_late_leaves_the_reconnected_one_alone(tmp_path: Path) -> None:
    """The worker reconnected while its old connection was still closing (its writes buffered):
    the old connection's end must neither close the new one nor fail a request sent on it."""
    path = str(tmp_path / "f.sock")
    accepted: list[asyncio.StreamWriter] = []
    got, answer, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def frame_of(reader: asyncio.StreamReader) -> int:
        length, rid, _ = HEADER.unpack(await reader.readexactly(HEADER.size))
        await reader.readexactly(length)
        return int(rid)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.write(HEADER.pack(0, await frame_of(reader), OK))
        if len(accepted) == 1:  # the old connection: reads nothing more, then breaks
            await release.wait()
            writer.transport.abort()
            return
        rid = await frame_of(reader)
        got.set()
        await answer.wait()
        writer.write(HEADER.pack(0, rid, OK))

    listening = await asyncio.start_unix_server(handle, path=path)
    client = LinkClient(path, SECRET)
    try:
        async with asyncio.timeout(10):
            await client.connect()
            old, old_reading = client._writer, client._reading
            assert old is not None and old_reading is not None
            # A batch larger than the socket's buffers: part of it waits in the transport, so
            # closing the old connection leaves it closing (not closed) until the daemon's side ends.
            stuck = asyncio.create_task(client.put(b"[" + b" " * (8 << 20) + b"]", 1, "webhook:generic"))
            await _until(lambda: old.transport.get_write_buffer_size() > 0)
            old.close()
            fresh = asyncio.create_task(client.put(dumps_events(events("b", 1)), 1, "webhook:generic"))
            await got.wait()  # sent on the new connection, its answer pending
            new = client._writer
            assert new is not None and new is not old
            release.set()
            with pytest.raises(ShuttingDown):
                await stuck
            await old_reading  # the old connection's end has been handled
            answer.set()
            await fresh
            assert not new.is_closing() and len(accepted) == 2
    finally:
        await client.close()
        listening.close()
