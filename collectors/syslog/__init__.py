"""Syslog collector: RFC 5424 and RFC 3164 (with Cisco, Juniper and Linux dialects) over UDP, TCP
and TLS. Settings are the `collectors.syslog` section (settings.py; docs/collectors/syslog.md).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from collectors.syslog.intake import Intake, log
from collectors.syslog.settings import SyslogSettings, parse
from collectors.syslog.stream import StreamListener
from collectors.syslog.udp import UdpListener
from correlator.collector import CollectorContext

BIND_RETRY = 5.0
Bind = Callable[[], Awaitable[None]]


class SyslogCollector:
    name = "syslog"

    def __init__(self, settings: SyslogSettings, ctx: CollectorContext) -> None:
        self.settings = settings
        intake = Intake(settings)
        self.udp = UdpListener(intake, ctx) if settings.udp is not None else None
        self.tcp = StreamListener(intake, ctx, "tcp") if settings.tcp is not None else None
        self.tls = StreamListener(intake, ctx, "tls") if settings.tls is not None else None
        self._binders: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        s = self.settings
        if self.udp is not None and s.udp is not None:
            await self._bind(functools.partial(self.udp.start, s.udp))
        if self.tcp is not None and s.tcp is not None:
            await self._bind(functools.partial(self.tcp.start, s.tcp))
        if self.tls is not None and s.tls is not None:
            await self._bind(functools.partial(self.tls.start, s.tls.listen, s.tls))

    async def _bind(self, bind: Bind) -> None:
        try:
            await bind()
        except OSError as e:
            # A taken port must not stop the daemon: report it and keep trying in the background.
            log.error("syslog: cannot listen: %s; retrying every %.0fs", e, BIND_RETRY)
            self._binders.append(asyncio.create_task(self._bind_later(bind), name="syslog-bind"))

    async def _bind_later(self, bind: Bind) -> None:
        while True:
            await asyncio.sleep(BIND_RETRY)
            try:
                await bind()
                log.info("syslog: listening now")
                return
            except OSError as e:
                log.warning("syslog: still cannot listen: %s", e)

    async def stop(self) -> None:
        for t in self._binders:
            t.cancel()
        for listener in (self.udp, self.tcp, self.tls):
            if listener is not None:
                await listener.stop()

    def healthy(self) -> bool:
        return all(x.healthy() for x in (self.udp, self.tcp, self.tls) if x is not None)


def create(settings: Mapping[str, Any], ctx: CollectorContext) -> SyslogCollector:
    return SyslogCollector(parse(settings), ctx)
