"""The UDP listener (RFC 5426): one message per datagram, batched, handed durably to the queue.

UDP has no way to push back on a sender. While the queue is full the batch is held and retried
after the queue's Retry-After; datagrams beyond `max_pending_events` held are dropped and counted
(reason queue_full), as are those the kernel drops when its receive buffer overflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from collectors.syslog.intake import (
    DROPPED,
    MESSAGES,
    NOT_ALLOWED,
    QUEUE_FULL,
    SHUTTING_DOWN,
    Intake,
    drop,
    log,
)
from collectors.syslog.mapping import SOURCE
from correlator import udpdrops
from correlator.collector import CollectorContext
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event

T = "udp"


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, intake: Intake, ctx: CollectorContext) -> None:
        self._intake = intake
        self._ctx = ctx
        self._max_pending = intake.settings.max_pending_events
        self._events: list[Event] = []
        self._wake = asyncio.Event()
        self._at: udpdrops.Listening | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._messages = MESSAGES.labels(T)
        self.address: tuple[str, int] | None = None

    async def start(self, listen: tuple[str, int]) -> None:
        s = self._intake.settings
        at = await udpdrops.listen(
            self, listen, s.recv_buffer_bytes, self._kernel_dropped, "syslog-udp-drops"
        )
        self._at, self.address = at, at.address
        self._flusher = asyncio.create_task(self._flush_forever(), name="syslog-udp-flush")
        log.info("syslog: listening on udp %s:%d (receive buffer %d bytes)", *self.address, at.recv_buffer)

    def _kernel_dropped(self, n: int) -> None:
        drop(
            T,
            "receive_buffer",
            "-",
            "kernel receive buffer full (raise recv_buffer_bytes and net.core.rmem_max)",
            n,
        )

    async def stop(self) -> None:
        if self._at is not None:
            self._at.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        # What arrived before the socket closed: every batch tried once more; what still cannot
        # be queued is counted, never dropped silently.
        while self._events and await self._emit_once() is None:
            pass
        if self._events:
            drop(T, SHUTTING_DOWN, "-", "the daemon is stopping and the queue is full", len(self._events))
            self._events.clear()

    def healthy(self) -> bool:
        return self._at is not None and self._at.open()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        sender = str(addr[0])
        if not self._intake.allowed(sender):
            drop(T, NOT_ALLOWED, sender, "not in allowed_senders")
            return
        if len(self._events) >= self._max_pending:
            drop(T, QUEUE_FULL, sender, "queue full and the held batch is at max_pending_events")
            return
        ev = self._intake.event(data, sender, time.time(), T)
        if ev is not None:
            self._events.append(ev)
            self._wake.set()

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog: udp socket error: %s", exc)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._events:
                delay = await self._emit_once()
                if delay is not None:
                    await asyncio.sleep(delay)

    async def _emit_once(self) -> float | None:
        """Emit the oldest batch; returns seconds to wait when the queue is full (batch kept)."""
        n = self._intake.settings.max_batch_events
        batch = self._events[:n]
        try:
            await self._ctx.emit(batch, SOURCE)
        except QueueFull as e:
            return self._ctx.retry_after() or e.retry_after
        except ShuttingDown:
            del self._events[: len(batch)]
            drop(T, SHUTTING_DOWN, "-", "the daemon is stopping", len(batch))
            return None
        except Exception:
            del self._events[: len(batch)]
            DROPPED.labels(T, "emit_failed").inc(len(batch))
            log.exception("syslog: emitting %d events failed", len(batch))
            return None
        del self._events[: len(batch)]
        self._messages.inc(len(batch))
        return None
