"""The `availability:` section of correlator.yaml: services file, SLA windows and target, which events
mean down and up, planned maintenance. config.py keeps the section raw; this validates it with file:line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.config import parse_duration
from correlator.errors import ConfigError
from correlator.event import Severity

DEFAULT_DOWN_TYPES = (
    "heartbeat.missed",
    "snmp.unreachable",
    "IF-MIB::linkDown",
    "snmp.interface.down",
    "host.down",
    "ci.down",
    "service.down",
)
DEFAULT_UP_TYPES = ("heartbeat.ok", "snmp.reachable", "IF-MIB::linkUp", "host.up", "ci.up", "service.up")


@dataclass(frozen=True, slots=True)
class Maintenance:
    start: float
    end: float
    services: frozenset[str] | None  # None: every service
    where: str = ""  # "file:line:col: " of the entry, for errors found later (an unknown service)


@dataclass(frozen=True, slots=True)
class AvailabilitySettings:
    services_file: Path | None = None
    windows: tuple[tuple[str, float], ...] = (("1d", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0))
    default_target: float = 0.999
    down_types: frozenset[str] = frozenset(DEFAULT_DOWN_TYPES)
    down_severities: frozenset[Severity] = frozenset({Severity.CRITICAL, Severity.MAJOR})
    up_types: frozenset[str] = frozenset(DEFAULT_UP_TYPES)
    maintenance: tuple[Maintenance, ...] = field(default_factory=tuple)


def parse_settings(raw: Mapping[str, Any]) -> AvailabilitySettings:
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        where = _where(raw, key)
        if key == "services_file":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}'availability.services_file': expected a path, got {value!r}")
            kw[key] = Path(value)
        elif key == "windows":
            kw[key] = tuple(
                _window(v, _item_where(value, i, where)) for i, v in enumerate(_list(value, key, where))
            )
            if not kw[key]:
                raise ConfigError(f"{where}'availability.windows': give at least one window such as 30d")
        elif key == "default_target":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(
                    f"{where}'availability.default_target': expected a ratio in (0, 1], got {value!r}"
                )
            kw[key] = float(value)
        elif key in ("down_types", "up_types"):
            items = _list(value, key, where)
            if not all(isinstance(v, str) and v for v in items):
                raise ConfigError(f"{where}'availability.{key}': expected a list of event types")
            kw[key] = frozenset(items)
        elif key == "down_severities":
            try:
                kw[key] = frozenset(Severity.parse(v) for v in _list(value, key, where))
            except Exception as e:
                raise ConfigError(f"{where}'availability.down_severities': {e}") from None
        elif key == "maintenance":
            items = _list(value, key, where)
            kw[key] = tuple(_maintenance(v, _item_where(value, i, where)) for i, v in enumerate(items))
        else:
            known = (
                "services_file, windows, default_target, down_types, down_severities, up_types, maintenance"
            )
            raise ConfigError(f"{where}unknown key 'availability.{key}' (expected one of {known})")
    return AvailabilitySettings(**kw)


def _window(value: Any, where: str) -> tuple[str, float]:
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise ConfigError(f"{where}'availability.windows': {e}") from None
    if seconds <= 0:
        raise ConfigError(f"{where}'availability.windows': a window must be longer than 0s")
    return (value if isinstance(value, str) else f"{seconds:g}s", seconds)


def _maintenance(value: Any, where: str) -> Maintenance:
    if not isinstance(value, Mapping) or not {"start", "end"} <= set(value):
        raise ConfigError(
            f"{where}a maintenance window is {{start: ISO-8601, end: ISO-8601, services: [...]}}"
        )
    extra = set(value) - {"start", "end", "services", "description"}
    if extra:
        raise ConfigError(f"{where}unknown key '{sorted(extra)[0]}' in a maintenance window")
    start, end = _time(value["start"], where), _time(value["end"], where)
    if end <= start:
        raise ConfigError(f"{where}a maintenance window must end after it starts")
    services = value.get("services")
    if services is not None and (
        not isinstance(services, list) or not all(isinstance(s, str) for s in services)
    ):
        raise ConfigError(f"{where}'services' of a maintenance window must be a list of service names")
    return Maintenance(start, end, None if services is None else frozenset(services), where)


def _time(value: Any, where: str) -> float:
    if isinstance(value, datetime):  # YAML parses unquoted timestamps itself
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{where}expected an ISO 8601 time like 2026-12-01T22:00:00Z, got {value!r}"
            ) from None
    if dt.tzinfo is None:
        raise ConfigError(f"{where}maintenance times need a zone (Z or +01:00), got {value!r}")
    return dt.timestamp()


def _list(value: Any, key: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}'availability.{key}': expected a list, got {value!r}")
    return value


def _where(raw: Mapping[str, Any], key: str) -> str:
    return f"{raw.where(key)}: " if isinstance(raw, yamlfile.YamlMap) else ""


def _item_where(value: Any, i: int, fallback: str) -> str:
    if isinstance(value, yamlfile.YamlList) and i < len(value.item_positions):
        return f"{value.item_positions[i]}: "
    return fallback
