"""The `collectors.mqtt` configuration section: brokers and subscriptions, validated at start-up.

Every error names the key (`collectors.mqtt.subscriptions[1].qos: ...`); docs/collectors/mqtt.md
lists every key with its default.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.mqtt.topics import TopicTemplate, parse_template
from correlator.config import parse_duration
from correlator.errors import ConfigError, did_you_mean
from correlator.fieldmap import GENERIC_FIELDS, FieldMap, parse_field_map
from correlator.jsonpath import Path as JsonPath
from correlator.jsonpath import compile_path

PREFIX = "collectors.mqtt"


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname verification (self-signed lab brokers)


@dataclass(frozen=True)
class BrokerSettings:
    name: str
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    clean_session: bool = False
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    keepalive: float = 30.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    max_batch: int = 5000
    max_buffered_qos0: int = 100_000


@dataclass(frozen=True)
class Thresholds:
    warning: float | None
    critical: float | None
    below: bool  # True: low values are bad (free disk, battery)
    hysteresis: float


@dataclass(frozen=True)
class Telemetry:
    value: JsonPath | None  # JSON path of the number; None: the whole payload is the number
    thresholds: Thresholds | None
    capacity: float | None  # the value at 100 % utilisation, for correlator_telemetry_utilization_ratio
    max_series: int


@dataclass(frozen=True)
class SubscriptionSettings:
    name: str
    topic: TopicTemplate
    qos: int
    format: str  # "json" or "text"
    brokers: tuple[str, ...]
    mapping: FieldMap
    telemetry: Telemetry | None


@dataclass(frozen=True)
class MqttSettings:
    brokers: tuple[BrokerSettings, ...]
    subscriptions: tuple[SubscriptionSettings, ...]


_TOP = {"brokers", "subscriptions"}
_BROKER = {
    "name",
    "host",
    "port",
    "client_id",
    "clean_session",
    "username",
    "password",
    "password_file",
    "tls",
    "keepalive",
    "reconnect_min",
    "reconnect_max",
    "max_batch",
    "max_buffered_qos0",
}
_TLS = {"ca_file", "cert_file", "key_file", "insecure"}
_SUB = {
    "name",
    "topic",
    "qos",
    "format",
    "brokers",
    "fields",
    "attributes",
    "severity_map",
    "defaults",
    "telemetry",
}
_TELEMETRY = {"value", "warning", "critical", "below", "hysteresis", "capacity", "max_series"}


def parse_settings(raw: Mapping[str, Any]) -> MqttSettings:
    _known(raw, _TOP, PREFIX)
    brokers_raw = raw.get("brokers")
    if not isinstance(brokers_raw, list) or not brokers_raw:
        raise ConfigError(f"'{PREFIX}.brokers': expected a list of at least one broker")
    brokers = tuple(_broker(b, f"{PREFIX}.brokers[{i}]", i) for i, b in enumerate(brokers_raw))
    names = [b.name for b in brokers]
    if len(set(names)) != len(names):
        raise ConfigError(f"'{PREFIX}.brokers': broker names must be unique, got {names}")
    ids = [b.client_id for b in brokers]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"'{PREFIX}.brokers': client_id must differ between brokers, got {ids}")
    subs_raw = raw.get("subscriptions")
    if not isinstance(subs_raw, list) or not subs_raw:
        raise ConfigError(f"'{PREFIX}.subscriptions': expected a list of at least one subscription")
    subs = tuple(_subscription(s, f"{PREFIX}.subscriptions[{i}]", names) for i, s in enumerate(subs_raw))
    sub_names = [s.name for s in subs]
    if len(set(sub_names)) != len(sub_names):
        raise ConfigError(f"'{PREFIX}.subscriptions': names must be unique, got {sub_names}")
    return MqttSettings(brokers, subs)


def _broker(raw: object, where: str, index: int) -> BrokerSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping with at least 'host'")
    _known(raw, _BROKER, where)
    name = _str(raw, "name", where, f"broker{index}" if index else "default")
    client_id = _str(raw, "client_id", where, f"correlator-{socket.gethostname()}-{name}")
    password = raw.get("password")
    if "password_file" in raw:
        if password is not None:
            raise ConfigError(f"'{where}.password_file': give either password or password_file, not both")
        try:
            password = Path(_str(raw, "password_file", where, "")).read_text().strip()
        except OSError as e:
            raise ConfigError(f"'{where}.password_file': cannot read it: {e}") from None
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"'{where}.password': expected a string")
    port = raw.get("port", 8883 if raw.get("tls") else 1883)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"'{where}.port': expected a port number 1-65535, got {port!r}")
    max_batch = _count(raw, "max_batch", where, 5000)
    b = BrokerSettings(
        name=name,
        host=_str(raw, "host", where, "127.0.0.1"),
        port=port,
        client_id=client_id,
        clean_session=_bool(raw, "clean_session", where, False),
        username=raw.get("username") and _str(raw, "username", where, ""),
        password=password,
        tls=_tls(raw.get("tls"), f"{where}.tls"),
        keepalive=_duration(raw, "keepalive", where, 30.0),
        reconnect_min=_duration(raw, "reconnect_min", where, 0.5),
        reconnect_max=_duration(raw, "reconnect_max", where, 30.0),
        max_batch=max_batch,
        max_buffered_qos0=_count(raw, "max_buffered_qos0", where, 100_000),
    )
    if b.reconnect_min <= 0 or b.reconnect_max < b.reconnect_min:
        raise ConfigError(f"'{where}.reconnect_max': must be >= reconnect_min, and reconnect_min > 0")
    return b


def _tls(raw: object, where: str) -> TlsSettings | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return TlsSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected true or a mapping of {', '.join(sorted(_TLS))}")
    _known(raw, _TLS, where)
    files: dict[str, Path | None] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        value = raw.get(key)
        if value is None:
            files[key] = None
            continue
        if not isinstance(value, str) or not Path(value).is_file():
            raise ConfigError(f"'{where}.{key}': expected the path of a readable file, got {value!r}")
        files[key] = Path(value)
    if (files["cert_file"] is None) != (files["key_file"] is None):
        raise ConfigError(f"'{where}.key_file': cert_file and key_file go together")
    return TlsSettings(
        files["ca_file"], files["cert_file"], files["key_file"], _bool(raw, "insecure", where, False)
    )


def _subscription(raw: object, where: str, brokers: list[str]) -> SubscriptionSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping with at least 'topic'")
    _known(raw, _SUB, where)
    try:
        topic = parse_template(raw.get("topic"))
    except ValueError as e:
        raise ConfigError(f"'{where}.topic': {e}") from None
    qos = raw.get("qos", 1)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise ConfigError(f"'{where}.qos': expected 0, 1 or 2, got {qos!r}")
    fmt = raw.get("format", "json")
    if fmt not in ("json", "text"):
        raise ConfigError(f"'{where}.format': expected 'json' or 'text', got {fmt!r}")
    sub_brokers = raw.get("brokers", brokers)
    if not isinstance(sub_brokers, list) or not sub_brokers:
        raise ConfigError(f"'{where}.brokers': expected a list of broker names")
    for b in sub_brokers:
        if b not in brokers:
            raise ConfigError(f"'{where}.brokers': no broker named {b!r}; known: {', '.join(brokers)}")
    telemetry = None
    if raw.get("telemetry") is not None:
        telemetry = _telemetry(raw["telemetry"], f"{where}.telemetry", fmt)
    default_fields = GENERIC_FIELDS if fmt == "json" and telemetry is None else {}
    if fmt == "text" and raw.get("fields"):
        raise ConfigError(f"'{where}.fields': a text payload has no fields; use topic levels and defaults")
    mapping = parse_field_map(raw, where, default_fields)
    if fmt == "json" and telemetry is None and raw.get("fields") is None:
        mapping = FieldMap(mapping.fields, mapping.attributes, mapping.severity_map, mapping.defaults, True)
    if telemetry is not None and "type" not in mapping.defaults and "type" not in topic.names.values():
        mapping = FieldMap(
            mapping.fields,
            mapping.attributes,
            mapping.severity_map,
            {**mapping.defaults, "type": "telemetry"},
        )
    name = _str(raw, "name", where, topic.filter)
    return SubscriptionSettings(name, topic, qos, fmt, tuple(sub_brokers), mapping, telemetry)


def _telemetry(raw: object, where: str, fmt: str) -> Telemetry:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping of {', '.join(sorted(_TELEMETRY))}")
    _known(raw, _TELEMETRY, where)
    value: JsonPath | None = None
    if raw.get("value") is not None:
        if fmt != "json":
            raise ConfigError(f"'{where}.value': only for format json; a text payload is the number itself")
        try:
            value = compile_path(raw["value"])
        except ValueError as e:
            raise ConfigError(f"'{where}.value': {e}") from None
    elif fmt == "json":
        value = ("value",)
    warning = _number(raw, "warning", where)
    critical = _number(raw, "critical", where)
    below = _bool(raw, "below", where, False)
    hysteresis = _number(raw, "hysteresis", where) or 0.0
    thresholds = None
    if warning is not None or critical is not None:
        if warning is not None and critical is not None and (critical < warning) != below:
            order = "below warning" if below else "above warning"
            raise ConfigError(f"'{where}.critical': expected a value {order} ({warning}), got {critical}")
        thresholds = Thresholds(warning, critical, below, hysteresis)
    capacity = _number(raw, "capacity", where)
    if capacity is not None and capacity <= 0:
        raise ConfigError(f"'{where}.capacity': expected a number > 0, got {capacity}")
    max_series = raw.get("max_series", 10000)
    if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
        raise ConfigError(f"'{where}.max_series': expected a whole number >= 1, got {max_series!r}")
    return Telemetry(value, thresholds, capacity, max_series)


def _known(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            hint = did_you_mean(str(key), known)
            extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(sorted(known))}"
            raise ConfigError(f"'{where}.{key}': unknown key{extra}")


def _str(raw: Mapping[str, Any], key: str, where: str, default: str) -> str:
    v = raw.get(key, default)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"'{where}.{key}': expected a non-empty string, got {v!r}")
    return v


def _bool(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    v = raw.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"'{where}.{key}': expected true or false, got {v!r}")
    return v


def _count(raw: Mapping[str, Any], key: str, where: str, default: int) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"'{where}.{key}': expected a whole number >= 1, got {v!r}")
    return v


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"'{where}.{key}': expected a number, got {v!r}")
    return float(v)


def _duration(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    try:
        return parse_duration(raw.get(key, default))
    except ValueError as e:
        raise ConfigError(f"'{where}.{key}': {e}") from None
