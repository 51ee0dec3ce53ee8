"""The contract between the daemon and its collectors (collectors/ implements it).

The daemon learns collectors from configuration (`collectors.<name>`), imports `collectors.<name>`
and calls its `create(settings, ctx)`. A collector hands normalised events to `ctx.emit`, which
returns only once they are durable; it may then acknowledge its sender.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from correlator import yamlfile
from correlator.clock import Clock
from correlator.config import Config
from correlator.errors import ConfigError, did_you_mean
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
    """Every enabled collector; one ConfigError listing the error of each section that has one."""
    collectors: list[Collector] = []
    errors: list[str] = []
    for name, settings in config.collectors.items():
        try:
            collector = _create(name, settings, ctx)
        except ConfigError as e:
            errors.append(locate(config.collectors, str(e)))
            continue
        if collector is not None:
            collectors.append(collector)
    if errors:
        raise ConfigError("\n".join(errors))
    return collectors


def section(name: str, settings: Any) -> Mapping[str, Any] | None:
    """`collectors.<name>` as its collector reads it: None when switched off, ConfigError when malformed.

    A key with no value (`webhook:`) is on with default settings, exactly like `webhook: {}`; whatever
    else reads a collector's section (the listen policy, the HTTP workers) asks here so it agrees."""
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"'collectors.{name}': expected a mapping of settings")
    enabled = settings.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"'collectors.{name}.enabled': expected true or false, got {enabled!r}")
    return settings if enabled else None


def enabled_section(config: Config, name: str) -> Mapping[str, Any] | None:
    """The section of a configured collector that is on, else None; a malformed one counts as off
    here, since create_collectors refuses it with the other sections' errors."""
    if name not in config.collectors:
        return None
    try:
        return section(name, config.collectors[name])
    except ConfigError:
        return None


def _create(name: str, settings: Any, ctx: CollectorContext) -> Collector | None:
    settings = section(name, settings)
    if settings is None:
        return None
    if name not in available():
        hint = did_you_mean(name, available())
        extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(available())}"
        raise ConfigError(f"'collectors.{name}': no such collector{extra}")
    module = importlib.import_module(f"collectors.{name}")
    factory: Callable[[Mapping[str, Any], CollectorContext], Collector] = module.create
    return factory({k: v for k, v in settings.items() if k != "enabled"}, ctx)


def available() -> list[str]:
    """The collector packages shipped in collectors/."""
    import collectors

    return sorted(m.name for m in pkgutil.iter_modules(collectors.__path__) if m.ispkg)


_KEY_PATH = re.compile(r"'(collectors(?:\.[A-Za-z0-9_-]+|\[\d+\])*)")


def locate(section: Mapping[str, Any], message: str) -> str:
    """Prefix `file:line:column:` to a collector's error when it names a key path and has no place yet.

    Collectors name the key they reject (`'collectors.mqtt.brokers[0].port': ...`); the place of the
    deepest part of that path found in the file is where the operator has to look.
    """
    if _POSITIONED.match(message):
        return message
    m = _KEY_PATH.search(message)
    if m is None:
        return message
    node: Any = section
    where: yamlfile.Position | None = getattr(section, "position", None)
    for part in re.findall(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]", m.group(1)[len("collectors") :]):
        key, index = part
        if key and isinstance(node, yamlfile.YamlMap) and key in node:
            where, node = node.where(key), node[key]
        elif index and isinstance(node, yamlfile.YamlList) and int(index) < len(node):
            where, node = node.item_positions[int(index)], node[int(index)]
        else:
            break
    return f"{where}: {message}" if where is not None else message


_POSITIONED = re.compile(r"^\S+:\d+:\d+: ")
