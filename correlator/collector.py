"""The contract between the daemon and its collectors (collectors/ implements it).

The daemon learns collectors from configuration (`collectors.<name>`), imports `collectors.<name>`
and calls its `create(settings, ctx)`. A collector hands normalised events to `ctx.emit`, which
returns only once they are durable; it may then acknowledge its sender.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from correlator.clock import Clock
from correlator.config import Config
from correlator.errors import ConfigError
from correlator.event import Event

Emit = Callable[[list[Event], str], Awaitable[None]]
"""emit(events, source): durable on return; raises QueueFull (push back) or ShuttingDown."""
DeadLetterSink = Callable[[list[Event], str, BaseException | str], Awaitable[None]]
"""dead_letter(events, reason, error): set aside durably (correlator/deadletter.py); raises if it cannot."""


@dataclass(frozen=True)
class CollectorContext:
    emit: Emit
    retry_after: Callable[[], float | None]  # seconds to wait while the queue is full, else None
    http: web.Application  # routes may be added during create(), before the server starts
    clock: Clock
    config: Config
    data_dir: Path
    dead_letter: DeadLetterSink | None = None  # for what emit keeps refusing (bounded tries)


class Collector(Protocol):
    name: str

    async def start(self) -> None:
        """Begin collecting; must not raise for a peer that is down (retry in the background)."""
        ...

    async def stop(self) -> None: ...

    def healthy(self) -> bool: ...


def create_collectors(config: Config, ctx: CollectorContext) -> list[Collector]:
    collectors: list[Collector] = []
    for name, settings in config.collectors.items():
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"'collectors.{name}': expected a mapping of settings")
        if settings.get("enabled", True) is False:
            continue
        try:
            module = importlib.import_module(f"collectors.{name}")
        except ModuleNotFoundError:
            raise ConfigError(f"'collectors.{name}': no such collector") from None
        factory: Callable[[Mapping[str, Any], CollectorContext], Collector] = module.create
        collectors.append(factory({k: v for k, v in settings.items() if k != "enabled"}, ctx))
    return collectors
