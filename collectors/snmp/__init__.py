"""SNMP collector: traps and informs (v1, v2c, v3) over UDP, and polling of targets for availability
and capacity. Settings are the `collectors.snmp` section (settings.py; docs/collectors/snmp.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collectors.snmp.mapping import Mapper
from collectors.snmp.oids import Resolver
from collectors.snmp.poller import Poller
from collectors.snmp.receiver import TrapReceiver
from collectors.snmp.settings import SnmpSettings, parse
from correlator.collector import CollectorContext


def mib_cache_dir(settings: SnmpSettings, data_dir: Path) -> Path:
    """Where `correlator mibs compile` writes and the collector reads compiled MIBs."""
    return settings.mib_cache_dir if settings.mib_cache_dir is not None else data_dir / "mibs"


class SnmpCollector:
    name = "snmp"

    def __init__(self, settings: SnmpSettings, ctx: CollectorContext) -> None:
        resolver = Resolver.from_cache_dir(mib_cache_dir(settings, ctx.data_dir))
        mapper = Mapper(resolver, settings.hosts)
        self.receiver = TrapReceiver(settings, mapper, ctx.emit)
        self.poller = Poller(settings, ctx.emit, settings.hosts) if settings.targets else None
        host, port = settings.listen
        polled = f", polling {len(settings.targets)} targets" if settings.targets else ""
        self.where = f"traps and informs on udp {host}:{port}{polled}"

    async def start(self) -> None:
        await self.receiver.start()
        if self.poller is not None:
            await self.poller.start()

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        await self.receiver.stop()

    def healthy(self) -> bool:
        return self.receiver.healthy()


def create(settings: Mapping[str, Any], ctx: CollectorContext) -> SnmpCollector:
    return SnmpCollector(parse(settings), ctx)
