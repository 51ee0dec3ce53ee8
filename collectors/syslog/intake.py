"""What every syslog listener shares: who may send, frame -> Event, and the collector's metrics.

A frame that cannot become an event is counted in correlator_syslog_dropped_total{transport, reason}
with a bounded reason and logged (rate-limited); it never stops the listener.
"""

from __future__ import annotations

import ipaddress
import logging

from prometheus_client.metrics import Counter, Gauge

from collectors.syslog.mapping import SOURCE, Mapper
from collectors.syslog.parse import ParseError, parse
from collectors.syslog.settings import SyslogSettings
from correlator import door
from correlator.event import Event
from correlator.logs import RateLimitedLog

log = logging.getLogger("collectors.syslog")
ratelog = RateLimitedLog(log)

MESSAGES = Counter(
    "correlator_syslog_messages_total", "Syslog messages turned into events, by transport", ["transport"]
)
DROPPED = Counter(
    "correlator_syslog_dropped_total",
    "Syslog messages or connections dropped, by transport and reason",
    ["transport", "reason"],
)
BACKPRESSURE = Counter(
    "correlator_syslog_backpressure_total",
    "Times a stream connection stopped reading because the ingest queue was full",
    ["transport"],
)
CONNECTIONS = Gauge("correlator_syslog_connections", "Open syslog stream connections", ["transport"])
CLOSED = Counter(
    "correlator_syslog_connections_closed_total",
    "Syslog stream connections the collector closed, by transport and reason (idle_timeout)",
    ["transport", "reason"],
)

TOO_LARGE = "too_large"
NOT_ALLOWED = "sender_not_allowed"
QUEUE_FULL = "queue_full"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal_error"
_CACHE_LIMIT = 4096


class Intake:
    def __init__(self, settings: SyslogSettings) -> None:
        self.settings = settings
        self._mapper = Mapper(settings.hosts, settings.max_clock_skew)
        self._networks = settings.allowed_senders
        self._allowed: dict[str, bool] = {}

    def allowed(self, sender: str) -> bool:
        if not self._networks:
            return True
        ok = self._allowed.get(sender)
        if ok is None:
            ok = self._check(sender)
            if len(self._allowed) >= _CACHE_LIMIT:  # spoofed UDP sources must not grow it forever
                self._allowed.clear()
            self._allowed[sender] = ok
        return ok

    def _check(self, sender: str) -> bool:
        try:
            addr = ipaddress.ip_address(sender.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._networks)

    def event(self, frame: bytes, sender: str, received: float, transport: str) -> Event | None:
        """The frame as an Event, or None when it was dropped (counted and logged)."""
        if len(frame) > self.settings.max_message_bytes:
            drop(transport, TOO_LARGE, sender, f"{len(frame)} bytes")
            return None
        try:
            ev = self._mapper.to_event(parse(frame, received), sender, received)
            refused = door.refusal(ev, SOURCE)  # the limits every collector applies (correlator/door.py)
            if refused is None:
                return ev
            drop(transport, refused.reason, sender, str(refused))
        except ParseError as e:
            drop(transport, e.reason, sender, str(e))
        except Exception:  # a parser bug must cost one message, counted, not the listener
            DROPPED.labels(transport, INTERNAL).inc()
            log.exception("syslog: failed to process a message from %s", sender)
        return None


def drop(transport: str, reason: str, sender: str, detail: str, n: int = 1) -> None:
    DROPPED.labels(transport, reason).inc(n)
    ratelog.warning(
        f"syslog:{reason}",
        "syslog: dropped %d from %s over %s (%s): %s",
        n,
        sender,
        transport,
        reason,
        detail,
    )
