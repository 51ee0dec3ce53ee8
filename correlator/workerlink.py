"""The channel that carries HTTP workers' batches to the daemon's journal: length-prefixed frames
on one persistent unix-socket stream per worker, one reply frame per batch.

Both ends live here: `LinkClient` in the worker (correlator/httpworker.py), `LinkServer` in the
daemon (correlator/httpworkers.py). An HTTP request per batch cost the daemon's event loop about
as much as converting the alerts itself; a frame costs two reads and one write.
docs/architecture.md "HTTP workers".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import math
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client.metrics import Counter

from correlator.errors import CorrelatorError, QueueFull, ShuttingDown

log = logging.getLogger(__name__)

# Every frame: body length, request id (a reply carries its request's), kind.
HEADER = struct.Struct("!IIB")
BATCH_HEAD = struct.Struct("!IB")  # event count, source length; then the source, then the payload
MAX_FRAME = 64 << 20
"""Largest frame body the daemon reads; a worker splits a larger batch (see LinkClient.put)."""
MAX_SECRET = 256
HELLO_TIMEOUT = 5.0

# Worker -> daemon
HELLO = 1  # body: the secret handed to the worker on its stdin
BATCH = 2  # body: BATCH_HEAD, source, payload (the journal's wire form)
# Daemon -> worker
OK = 0x80  # hello accepted / batch durable
FULL = 0x81  # body: JSON {reason, error, retry_after}
STOPPING = 0x82  # the queue takes no more input
BAD = 0x83  # the payload is not the events the frame announced: nothing was journaled

REFUSED = Counter(
    "correlator_http_worker_frames_refused_total",
    "Frames on the HTTP workers' channel refused (the connection is closed), by reason",
    ["reason"],
)
UNAUTHENTICATED, TOO_LARGE, MALFORMED = "unauthenticated", "too_large", "malformed"
for _r in (UNAUTHENTICATED, TOO_LARGE, MALFORMED):
    REFUSED.labels(_r)


def frame(kind: int, rid: int, *parts: bytes) -> bytes:
    return HEADER.pack(sum(map(len, parts)), rid, kind) + b"".join(parts)


class _Refused(Exception):
    def __init__(self, reason: str, what: str) -> None:
        super().__init__(what)
        self.reason = reason


Put = Callable[[bytes, int, str], Awaitable[None]]


class LinkServer:
    """The daemon's end: authenticate each connection, journal its batches, answer each one.

    `put(payload, count, source)` is durable on return or raises QueueFull / ShuttingDown.
    `on_change(n)` is told the number of authenticated connections (live workers) when it changes.
    """

    def __init__(self, secret: str, put: Put, on_change: Callable[[int], None]) -> None:
        self._secret = secret.encode()
        self._put = put
        self._on_change = on_change
        self.connected = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                kind, rid, body = await _read(reader, MAX_SECRET)  # a stranger gets no 64 MiB read
            if kind != HELLO or not hmac.compare_digest(body, self._secret):
                raise _Refused(UNAUTHENTICATED, "no valid hello")
        except (_Refused, TimeoutError, asyncio.IncompleteReadError, OSError) as e:
            reason = e.reason if isinstance(e, _Refused) else UNAUTHENTICATED
            REFUSED.labels(reason).inc()
            log.warning("http workers' channel: connection refused (%s): %s", reason, e or type(e).__name__)
            writer.close()
            return
        writer.write(frame(OK, rid))
        self._count(+1)
        try:
            await self._serve(reader, writer)
        finally:
            self._count(-1)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                kind, rid, body = await _read(reader)
                if kind != BATCH:
                    raise _Refused(MALFORMED, f"unknown frame kind {kind}")
                count, source, payload = _batch(body)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the worker ended (its in-flight batches still finish and are journaled)
            except _Refused as e:
                REFUSED.labels(e.reason).inc()
                log.error("http workers' channel: frame refused (%s): %s; closing it", e.reason, e)
                return
            task = asyncio.create_task(self._one(writer, rid, payload, count, source))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(
        self, writer: asyncio.StreamWriter, rid: int, payload: bytes, count: int, source: str
    ) -> None:
        try:
            await self._put(payload, count, source)
            reply = frame(OK, rid)
        except QueueFull as e:
            answer = {"reason": e.reason, "error": e.answer, "retry_after": max(1, math.ceil(e.retry_after))}
            reply = frame(FULL, rid, orjson.dumps(answer))
        except ShuttingDown:
            reply = frame(STOPPING, rid)
        except ValueError as e:
            REFUSED.labels(MALFORMED).inc()
            log.error("http workers' channel: a batch refused: %s", e)
            reply = frame(BAD, rid)
        except Exception:  # always answer: the worker's client waits for this reply
            log.exception("http workers' channel: taking a batch failed; answered as unavailable")
            reply = frame(STOPPING, rid)
        if not writer.is_closing():
            writer.write(reply)

    def _count(self, step: int) -> None:
        self.connected += step
        self._on_change(self.connected)

    async def drain(self) -> None:
        """Wait for the batches in hand (their events are journaled or refused)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))


async def _read(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> tuple[int, int, bytes]:
    length, rid, kind = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > limit:
        raise _Refused(TOO_LARGE, f"a frame of {length} bytes (at most {limit} here)")
    return kind, rid, await reader.readexactly(length) if length else b""


def _batch(body: bytes) -> tuple[int, str, bytes]:
    """The checks that keep the daemon whole; the events themselves come from our own worker,
    which ran the door on each of them (docs/architecture.md "HTTP workers")."""
    if len(body) < BATCH_HEAD.size:
        raise _Refused(MALFORMED, "a batch frame shorter than its head")
    count, n = BATCH_HEAD.unpack_from(body)
    start = BATCH_HEAD.size + n
    payload = body[start:]
    if count < 1 or len(payload) < 2 or payload[:1] != b"[":
        raise _Refused(MALFORMED, "a batch frame without events")
    try:
        source = body[BATCH_HEAD.size : start].decode()
    except UnicodeDecodeError:
        raise _Refused(MALFORMED, "a batch frame's source is not UTF-8") from None
    if not source or len(source) != n:
        raise _Refused(MALFORMED, "a batch frame's source is not ASCII text")
    return count, source, payload


class LinkClient:
    """The worker's end: one connection, opened again on the next batch after it breaks."""

    def __init__(self, path: str, secret: str) -> None:
        self._path = path
        self._secret = secret.encode()
        self._ids = itertools.count(1)
        # The replies awaited on the current connection; each connection has its own.
        self._waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open and authenticate; raises OSError or ConnectionError when the daemon refuses."""
        reader, writer = await asyncio.open_unix_connection(self._path, limit=1 << 16)
        writer.write(frame(HELLO, 0, self._secret))
        try:
            kind, _, _ = await asyncio.wait_for(_read(reader), HELLO_TIMEOUT)
        except (asyncio.IncompleteReadError, TimeoutError, _Refused) as e:
            writer.close()
            raise ConnectionError(f"the daemon refused the channel: {e!r}") from None
        if kind != OK:
            writer.close()
            raise ConnectionError("the daemon refused the channel")
        self._writer, self._waiting = writer, {}
        self._reading = asyncio.create_task(self._read_replies(reader, writer, self._waiting))

    async def put(self, payload: bytes, count: int, source: str, split: int = MAX_FRAME) -> None:
        """Durable on return; raises QueueFull (with the daemon's reason) or ShuttingDown. A batch
        larger than one frame goes as several, each durable before the answer."""
        room = split - BATCH_HEAD.size - len(source.encode())
        if len(payload) > room and count > 1:
            events = orjson.loads(payload)
            half = len(events) // 2
            for part in (events[:half], events[half:]):
                await self.put(orjson.dumps(part), len(part), source, split)
            return
        kind, body = await self._call(BATCH, BATCH_HEAD.pack(count, len(source)) + source.encode(), payload)
        if kind == OK:
            return
        if kind == FULL:
            answer: dict[str, Any] = orjson.loads(body)
            raise _pushed_back(answer)
        # A refused batch (BAD) is a fault of ours, not the client's: it may send it again.
        raise ShuttingDown("the daemon takes no more input" if kind == STOPPING else f"reply kind {kind}")

    async def _call(self, kind: int, *parts: bytes) -> tuple[int, bytes]:
        async with self._lock:  # one reconnection at a time
            if self._writer is None or self._writer.is_closing():
                try:
                    await self.connect()
                except (OSError, ConnectionError) as e:
                    raise ShuttingDown(f"the daemon is not answering: {e}") from None
        writer, waiting = self._writer, self._waiting
        assert writer is not None
        rid = next(self._ids) & 0xFFFFFFFF
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        waiting[rid] = fut
        try:
            writer.write(frame(kind, rid, *parts))
            await writer.drain()
            return await fut
        except (ConnectionError, OSError) as e:
            # Nothing acknowledged: the batch may or may not be journaled; the client retries.
            raise ShuttingDown(f"the channel to the daemon broke: {e}") from None
        finally:
            waiting.pop(rid, None)
            # Failed by the reader while the write itself failed: the error was raised above, so
            # mark the reply's as seen (asyncio logs "never retrieved" for it otherwise).
            if fut.done() and not fut.cancelled():
                fut.exception()

    async def _read_replies(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        waiting: dict[int, asyncio.Future[tuple[int, bytes]]],
    ) -> None:
        """Until its connection ends; then it closes that connection and fails the requests sent
        on it, never those of a newer one (the worker may have reconnected before this ends)."""
        error: Exception = ConnectionResetError("the daemon closed the channel")
        try:
            while True:
                kind, rid, body = await _read(reader)
                fut = waiting.get(rid)
                if fut is not None and not fut.done():
                    fut.set_result((kind, body))
        except (asyncio.IncompleteReadError, OSError, _Refused) as e:
            error = ConnectionResetError(f"the daemon closed the channel: {e!r}")
        finally:
            writer.close()
            for fut in waiting.values():
                if not fut.done():
                    fut.set_exception(error)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading


class PushedBack(QueueFull):
    """The daemon refused the batch (queue full, journal unable to write): its reason and words."""

    def __init__(self, reason: str, answer: str, retry_after: float) -> None:
        CorrelatorError.__init__(self, answer)
        self.reason = reason
        self.answer = answer
        self.retry_after = retry_after


def _pushed_back(answer: dict[str, Any]) -> PushedBack:
    return PushedBack(
        str(answer.get("reason")), str(answer.get("error")), float(answer.get("retry_after", 1))
    )
