"""The trap/inform listener: one UDP socket, fast-path decode, batched durable emit, then inform replies.

Datagrams -> ber.decode (v1/v2c) or the pysnmp slow path (v3, unusual) -> Mapper -> a batch that one
flusher task hands to ctx.emit. Inform Responses of a batch are sent only after emit returned, so an
answered inform is on disk; a failed emit sends no answer and the sender retransmits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.metrics import Counter

from collectors.snmp import ber
from collectors.snmp.engine import Notification, SlowPath
from collectors.snmp.mapping import SOURCE, Mapper
from collectors.snmp.settings import SnmpSettings
from correlator import door, udpdrops
from correlator.collector import Emit
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.metrics import Children

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

DROPPED = Counter(
    "correlator_snmp_dropped_total", "SNMP datagrams or notifications dropped, by reason", ["reason"]
)
RECEIVED = Counter(
    "correlator_snmp_notifications_total",
    "SNMP notifications decoded, by version and decoder path",
    ["version", "path"],
)
DROPPED_BY = Children(DROPPED)  # per trap: resolved once per label set, not per datagram
RECEIVED_BY = Children(RECEIVED)
BIND_RETRY = 5.0
INFORMS_ANSWERED = Counter(
    "correlator_snmp_informs_answered_total", "Informs answered after their event was durably accepted"
)


class TrapReceiver(asyncio.DatagramProtocol):
    def __init__(self, settings: SnmpSettings, mapper: Mapper, emit: Emit) -> None:
        self._settings = settings
        self._mapper = mapper
        self._emit = emit
        self._communities = {c.encode() for c in settings.communities}
        self._slow: SlowPath | None = None
        self._at: udpdrops.Listening | None = None
        self._events: list[Event] = []
        self._replies: list[tuple[int, Callable[[], None]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._binder: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        s = self._settings
        self._slow = SlowPath(list(s.communities), list(s.users), s.engine_id)
        self._flusher = asyncio.create_task(self._flush_forever(), name="snmp-flush")
        try:
            await self._bind()
        except OSError as e:
            # A taken port must not stop the daemon: report it and keep trying in the background.
            log.error("snmp: cannot listen on udp %s:%d: %s; retrying every %.0fs", *s.listen, e, BIND_RETRY)
            self._binder = asyncio.create_task(self._bind_later(), name="snmp-bind")

    async def _bind(self) -> None:
        s = self._settings
        assert self._slow is not None
        at = await udpdrops.listen(self, s.listen, s.recv_buffer_bytes, self._kernel_dropped, "snmp-drops")
        self._at, self.address = at, at.address
        self._slow.attach(at.transport)
        log.info(
            "snmp: listening for traps on udp %s:%d (receive buffer %d bytes)", *self.address, at.recv_buffer
        )

    async def _bind_later(self) -> None:
        while True:
            await asyncio.sleep(BIND_RETRY)
            try:
                await self._bind()
                return
            except OSError as e:
                _ratelog.warning(
                    "bind", "snmp: still cannot listen on udp %s:%d: %s", *self._settings.listen, e
                )

    async def stop(self) -> None:
        if self._binder is not None:
            self._binder.cancel()
        if self._at is not None:
            self._at.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        while self._events:
            await self._flush()  # what was decoded before the socket closed
        if self._slow is not None:
            self._slow.close()

    def healthy(self) -> bool:
        return self._at is not None and self._at.open()

    # -- receive (synchronous, on the loop: no awaits between datagram and batch) --

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self._receive(data, addr)
        except Exception:  # a bug must cost one datagram, counted, not the listener
            DROPPED_BY("internal_error").inc()
            log.exception("snmp: failed to process a datagram from %s", addr[0])

    def _receive(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        sender = str(addr[0])
        if len(data) > self._settings.max_datagram_bytes:
            self._drop("too_large", sender, f"{len(data)} bytes")
            return
        if len(self._events) >= self._settings.max_pending_events:
            self._drop("overload", sender, "pending batch full")
            return
        try:
            msg = ber.decode(data)
        except ber.Unusual:
            self._slow_path(data, (sender, int(addr[1])))
            return
        if msg.community not in self._communities:
            self._drop("bad_community", sender, f"community not accepted (v{msg.version + 1})")
            return
        try:
            event = self._mapper.from_fast(msg, sender, time.time())
        except ber.Unusual as e:  # e.g. a malformed OID inside an otherwise well-formed message
            self._drop("malformed", sender, str(e))
            return
        RECEIVED_BY("v1" if msg.version == 0 else "v2c", "fast").inc()
        if not self._admit(event, sender):
            if msg.pdu_type == ber.INFORM:  # answered: a retransmission would be refused again
                self._send(ber.encode_response(msg, data), addr)
            return
        self._events.append(event)
        if msg.pdu_type == ber.INFORM:
            reply = ber.encode_response(msg, data)
            dest = addr
            self._replies.append((len(self._events) - 1, lambda: self._send(reply, dest)))
        self._wake.set()

    def error_received(self, exc: Exception) -> None:
        _ratelog.warning("socket", "snmp: socket error: %s", exc)

    def _slow_path(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._slow is None:
            return
        if not data or data[0] != 0x30:
            self._drop("malformed", addr[0], "not a BER SEQUENCE")
            return

        def deliver(note: Notification, respond: Callable[[], None] | None) -> None:
            try:
                event = self._mapper.from_varbinds(note.varbinds, addr[0], note.version, time.time())
            except ber.Unusual as e:
                self._drop("malformed", addr[0], str(e))
                return
            RECEIVED_BY(note.version, "pysnmp").inc()
            if not self._admit(event, addr[0]):
                if respond is not None:
                    respond()
                return
            self._events.append(event)
            if respond is not None:
                self._replies.append((len(self._events) - 1, respond))
            self._wake.set()

        refused = self._slow.feed(data, addr, deliver)
        if refused is not None:
            self._drop(refused[0], addr[0], refused[1])

    def _admit(self, event: Event, sender: str) -> bool:
        """The door (correlator/door.py): a refused notification is counted and never queued."""
        e = door.refusal(event, SOURCE)
        if e is not None:
            _ratelog.warning(f"snmp:{e.reason}", "snmp: refused a notification from %s: %s", sender, e)
        return e is None

    def _send(self, data: bytes, addr: Any) -> None:
        if self._at is not None and self._at.open():
            self._at.transport.sendto(data, addr)

    def _drop(self, reason: str, sender: str, detail: str) -> None:
        DROPPED_BY(reason).inc()
        _ratelog.warning(
            f"snmp:{reason}", "snmp: dropped a datagram from %s (%s): %s", sender, reason, detail
        )

    def _kernel_dropped(self, n: int) -> None:
        DROPPED_BY("receive_buffer").inc(n)
        _ratelog.warning(
            "snmp:receive_buffer",
            "snmp: the kernel dropped %d datagrams: receive buffer full (raise recv_buffer_bytes "
            "and net.core.rmem_max)",
            n,
        )

    # -- durable hand-off --

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._events:
                await self._flush()

    async def _flush(self) -> None:
        n = self._settings.max_batch_events
        events, self._events = self._events[:n], self._events[n:]
        # Replies are kept with the position of their event, so a split batch answers only its own.
        replies = [r for pos, r in self._replies if pos < n]
        self._replies = [(pos - n, r) for pos, r in self._replies if pos >= n]
        try:
            await self._emit(events, SOURCE)
        except (QueueFull, ShuttingDown) as e:
            # Traps cannot be asked again: count them. Informs are not answered, so senders retransmit.
            DROPPED_BY(e.reason if isinstance(e, QueueFull) else "shutting_down").inc(len(events))
            _ratelog.warning("snmp:emit", "snmp: %d notifications not accepted: %s", len(events), e)
            return
        except Exception:
            DROPPED_BY("emit_failed").inc(len(events))
            log.exception("snmp: emitting %d events failed", len(events))
            return
        for reply in replies:
            reply()
        INFORMS_ANSWERED.inc(len(replies))
