"""The daemon's configuration: built-in defaults < `correlator.yaml` < command-line flags.

Every key is declared once here as a dataclass field with its default; docs/configuration.md lists
them. Unknown keys and bad values stop start-up with the file, line, key and what was expected.
Collector sections (`collectors.<name>`) are kept raw here and validated by the collector itself.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from correlator import yamlfile
from correlator.errors import ConfigError, did_you_mean

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: object) -> float:
    """'500ms', '30s', '5m', '2h', '7d', '1w' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s' or '5m', got {value!r}")
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"expected a duration like '30s', '5m' or '7d', got {value!r}")


def duration_text(seconds: float) -> str:
    """Seconds as an operator writes them in a rule file: 30s, 5m, 1h, 7d (the inverse of parse_duration)."""
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_hostport(value: object) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080' or ':8080' -> (host, port)."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and port.isdigit() and 0 < int(port) < 65536:
            host = host.strip("[]") or "127.0.0.1"
            return host, int(port)
    raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, got {value!r}")


def _duration(default: float, doc: str) -> Any:
    return field(default=default, metadata={"kind": "duration", "doc": doc})


def _doc(default: Any, doc: str) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class HttpConfig:
    listen: tuple[str, int] = field(
        default=("127.0.0.1", 8080), metadata={"kind": "hostport", "doc": "address of the HTTP API"}
    )
    max_body_bytes: int = _doc(1 << 20, "largest accepted request body; larger ones get 413")
    tokens: dict[str, Any] = field(
        default_factory=dict,
        metadata={"kind": "raw", "doc": "API tokens {name: {role, sha256}}; empty: API open (docs/api.md)"},
    )
    tokens_file: Path | None = _doc(
        None, "YAML file holding the `tokens` mapping (a mounted secret); adds to `tokens`"
    )
    allow_open: bool = _doc(
        False, "listen on a non-loopback address without API and ingest tokens (refused otherwise)"
    )
    idle_timeout: float = _duration(
        15.0, "a connection without a complete request head for this long (idle or slow) is closed"
    )
    body_timeout: float = _duration(
        30.0, "a request body must arrive within this once its head is in; else 408"
    )
    max_connections: int = _doc(
        512, "open HTTP connections at most; beyond it the oldest idle one is closed, or the new one gets 503"
    )
    workers: int = _doc(
        0,
        "extra processes that take the public port and webhook ingest (0: the daemon alone; docs/architecture.md)",
    )


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path = _doc(Path("var"), "directory of the SQLite journal and event store")
    retention: float = _duration(7 * 86400.0, "how long stored events are kept")
    fsync: bool = _doc(
        True, "fsync the journal on every group commit (survives power loss, not just a crash)"
    )
    retention_interval: float = _duration(3600.0, "how often the retention job runs")
    dsn: str | None = _doc(
        None,
        "postgresql://... keeps events (and incidents) in PostgreSQL instead of SQLite (docs/incidents.md)",
    )


@dataclass(frozen=True)
class QueueConfig:
    max_events: int = _doc(200_000, "events acknowledged but not yet processed before ingest answers 503")
    retry_after: float = _duration(1.0, "Retry-After sent with 503 when the queue is full")
    batch_events: int = _doc(20000, "most events the pipeline takes from the queue at once")
    stall_after: float = _duration(
        60.0, "/readyz answers 503 once events wait this long with no batch processed (stuck store)"
    )


@dataclass(frozen=True)
class IngestConfig:
    max_future: float = _duration(
        86400.0, "events timed further after their receipt are refused (time_out_of_range)"
    )
    max_past: float = _duration(
        3650 * 86400.0, "events timed further before their receipt are refused (time_out_of_range)"
    )


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = _doc("info", "log level")
    format: Literal["text", "json"] = _doc("text", "'json' writes one JSON object per line")


@dataclass(frozen=True)
class CorrelationConfig:
    lateness: float = _duration(5.0, "events older than the correlation clock by more are counted as late")
    max_depth: int = _doc(3, "how many times an emitted correlated event may re-enter level 2")
    snapshot_interval: float = _duration(60.0, "how often level-2 state is saved (also saved on shutdown)")
    notify: dict[str, Any] = field(
        default_factory=dict,
        metadata={"kind": "raw", "doc": "webhook targets of `notify`: {name: {url, timeout, retries, ...}}"},
    )


@dataclass(frozen=True)
class ClusterConfig:
    role: Literal["all", "ingest", "worker"] = _doc(
        "all",
        "'all': one process does everything (embedded); 'ingest' or 'worker': scale-out (docs/cluster.md)",
    )
    servers: str = _doc(
        "nats://127.0.0.1:4222", "NATS server URLs, comma-separated (any node of the cluster)"
    )
    token_file: Path | None = _doc(None, "file holding the NATS token (a mounted secret); none: no token")
    stream: str = _doc("events", "JetStream stream; partition p is the subject '<stream>.<p>'")
    partitions: int = _doc(16, "partitions of the stream: the most workers that can share the load")
    replicas: int = _doc(3, "copies JetStream keeps of the stream, leases and positions (1, 3 or 5)")
    partition_by: Literal["site", "host"] = _doc(
        "site", "partition key: the inventory site of the event's host (else the host), or the host"
    )
    retention: float = _duration(86400.0, "how long the stream keeps events (a worker replays from it)")
    lease_ttl: float = _duration(6.0, "a worker silent for this long loses its partitions to the others")
    dsn: str | None = _doc(
        None, "postgresql://... shared by the workers (events, incidents, changes, problems)"
    )
    dsn_file: Path | None = _doc(None, "file holding the DSN (a mounted secret, with its password)")
    name: str | None = _doc(None, "this process' name in leases and logs; default: host name and pid")


@dataclass(frozen=True)
class Config:
    http: HttpConfig = field(default_factory=HttpConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    rules_dir: Path = _doc(Path("rules"), "directory of the rule files (searched recursively)")
    inventory_file: Path | None = _doc(
        None, "host inventory, YAML or CSV (site, service, owner, criticality); see docs/inventory.md"
    )
    shutdown_grace: float = _duration(10.0, "time allowed to drain the queue on SIGTERM")
    collectors: dict[str, Any] = field(
        default_factory=lambda: {"webhook": {}, "snmp": {}},
        metadata={
            "kind": "raw",
            "merge": True,
            "doc": "collector sections, each validated by its collector; merged with this default"
            " (switch one off with `enabled: false`)",
        },
    )
    incidents: dict[str, Any] = field(
        default_factory=dict, metadata={"kind": "raw", "doc": "incident management (docs/incidents.md)"}
    )
    changes: dict[str, Any] = field(
        default_factory=dict, metadata={"kind": "raw", "doc": "change management (docs/changes.md)"}
    )
    problems: dict[str, Any] = field(
        default_factory=dict, metadata={"kind": "raw", "doc": "problem management (docs/problems.md)"}
    )
    availability: dict[str, Any] = field(
        default_factory=dict,
        metadata={"kind": "raw", "doc": "services file, SLA windows, maintenance (correlator/availability)"},
    )
    capacity: dict[str, Any] = field(
        default_factory=dict, metadata={"kind": "raw", "doc": "capacity trend settings (correlator/capacity)"}
    )


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Build the Config: defaults, then the file (if any), then dotted-key overrides from flags."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yamlfile.load(path)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except yamlfile.YamlError as e:
            raise ConfigError(str(e)) from None
        if loaded is None:
            loaded = yamlfile.YamlMap()
            loaded.position = yamlfile.Position(str(path), 1, 1)
            loaded.key_positions, loaded.value_positions = {}, {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}:1:1: the configuration must be a mapping of keys")
        raw = loaded
    cfg: Config = _build(Config, raw, "")  # raises one ConfigError listing every bad key
    for dotted, value in (overrides or {}).items():
        cfg = _override(cfg, dotted.split("."), value, dotted)
    return cfg


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """`typing.get_type_hints(cls)`, worked out once per class: it compiles every annotation."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _build(cls: type[Any], raw: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    errors: list[str] = []  # every bad key is reported at once, as `rules check` does
    for key, value in raw.items():
        where = _where(raw, key)
        if key not in fields:
            hint = did_you_mean(key, fields)
            extra = f" (did you mean '{prefix}{hint}'?)" if hint else ""
            errors.append(f"{where}unknown key '{prefix}{key}'{extra}")
            continue
        f = fields[key]
        try:
            kwargs[key] = _convert(f, _hints(cls)[key], value, f"{prefix}{key}", _where(raw, key, value=True))
        except ConfigError as e:
            errors.append(str(e))
    if errors:
        raise ConfigError("\n".join(errors))
    return cls(**kwargs)


def _convert(f: dataclasses.Field[Any], hint: Any, value: Any, name: str, where: str) -> Any:
    kind = f.metadata.get("kind")
    try:
        if kind == "duration":
            return parse_duration(value)
        if kind == "hostport":
            return parse_hostport(value)
        if kind == "raw":
            if not isinstance(value, dict):
                raise ValueError(f"expected a mapping, got {type(value).__name__}")
            return _merged(f, value) if f.metadata.get("merge") else value
        return _typed(hint, value, name)
    except ValueError as e:
        raise ConfigError(f"{where}'{name}': {e}") from None


def _typed(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {type(value).__name__}")
        return _build(typing.cast(type[Any], hint), value, name + ".")
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _typed(args[0], value, name)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a whole number >= 0, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a path, got {value!r}")
        return Path(value)
    raise ValueError(f"unsupported setting type {hint!r}")  # a bug in this module, not in the file


def _override(obj: Any, parts: list[str], value: Any, dotted: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    head = parts[0]
    if head not in names:
        raise ConfigError(f"unknown setting '{dotted}'")
    if len(parts) == 1:
        f = names[head]
        new = _convert(f, _hints(type(obj))[head], value, dotted, "")
    else:
        new = _override(getattr(obj, head), parts[1:], value, dotted)
    return dataclasses.replace(obj, **{head: new})


def _merged(f: dataclasses.Field[Any], value: dict[str, Any]) -> dict[str, Any]:
    """The file's sections over the default ones: naming one section never switches the others off."""
    factory: Any = f.default_factory
    merged = {**factory(), **value}
    if not isinstance(value, yamlfile.YamlMap):
        return merged
    out = yamlfile.YamlMap(merged)  # keeps the file positions for the collectors' error messages
    out.position, out.key_positions, out.value_positions = (
        value.position,
        value.key_positions,
        value.value_positions,
    )
    return out


def _where(raw: dict[str, Any], key: str, value: bool = False) -> str:
    if isinstance(raw, yamlfile.YamlMap):
        return f"{raw.where_value(key) if value else raw.where(key)}: "
    return ""


def describe(cls: type[Any] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, description) for every setting: the source of docs/configuration.md."""
    rows: list[tuple[str, str, str]] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(describe(typing.cast(type[Any], hint), f"{prefix}{f.name}."))
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        rows.append((prefix + f.name, repr(default), f.metadata.get("doc", "")))
    return rows
