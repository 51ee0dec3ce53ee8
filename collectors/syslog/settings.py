"""The `collectors.syslog` configuration section: listeners per transport, senders, limits.

Read once by `create()`; every error names its key. docs/collectors/syslog.md lists every key.
Secure by default: listeners on loopback; a listener beyond loopback needs `allowed_senders`
(syslog itself authenticates nobody) unless it is TLS with client certificates, or the operator
says `allow_any_sender: true`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.api.exposure import is_loopback
from correlator.config import parse_duration, parse_hostport
from correlator.errors import ConfigError, did_you_mean

P = "collectors.syslog"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TlsListener:
    listen: tuple[str, int]
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set: senders must present a certificate signed by it


@dataclass(frozen=True)
class SyslogSettings:
    udp: tuple[str, int] | None = ("127.0.0.1", 5514)
    tcp: tuple[str, int] | None = ("127.0.0.1", 5514)
    tls: TlsListener | None = None
    allowed_senders: tuple[Network, ...] = ()  # empty: any sender
    allow_any_sender: bool = False
    hosts: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 8192
    max_clock_skew: float = 3600.0
    max_connections: int = 512
    recv_buffer_bytes: int = 4 << 20
    max_batch_events: int = 5000
    max_pending_events: int = 50_000
    # None: a quiet sender keeps its place (keepalive still reaps dead peers)
    idle_timeout: float | None = None


_KEYS = {
    "udp",
    "tcp",
    "tls",
    "allowed_senders",
    "allow_any_sender",
    "hosts",
    "max_message_bytes",
    "max_clock_skew",
    "max_connections",
    "recv_buffer_bytes",
    "max_batch_events",
    "max_pending_events",
    "idle_timeout",
}
_TLS_KEYS = {"listen", "cert_file", "key_file", "client_ca_file"}
_COUNTS = (
    "max_message_bytes",
    "max_connections",
    "recv_buffer_bytes",
    "max_batch_events",
    "max_pending_events",
)


def parse(raw: Mapping[str, Any]) -> SyslogSettings:
    _known(raw, _KEYS, P)
    d = SyslogSettings()
    kw: dict[str, Any] = {}
    for key in ("udp", "tcp"):
        if key in raw:
            kw[key] = None if raw[key] in (None, False) else _hostport(raw[key], f"{P}.{key}")
    if raw.get("tls") not in (None, False):
        kw["tls"] = _tls(raw["tls"], f"{P}.tls")
    if "allowed_senders" in raw:
        kw["allowed_senders"] = _networks(raw["allowed_senders"], f"{P}.allowed_senders")
    if "allow_any_sender" in raw:
        if not isinstance(raw["allow_any_sender"], bool):
            raise ConfigError(f"'{P}.allow_any_sender': expected true or false")
        kw["allow_any_sender"] = raw["allow_any_sender"]
    if "hosts" in raw:
        hosts = raw["hosts"]
        if not isinstance(hosts, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in hosts.items()
        ):
            raise ConfigError(f"'{P}.hosts': expected a mapping of sender address or name -> host name")
        kw["hosts"] = dict(hosts)
    for key in _COUNTS:
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"'{P}.{key}': expected a whole number >= 1, got {v!r}")
            kw[key] = v
    if kw.get("max_message_bytes", d.max_message_bytes) > 65536:
        raise ConfigError(f"'{P}.max_message_bytes': at most 65536 (the largest UDP datagram)")
    if "max_clock_skew" in raw:
        kw["max_clock_skew"] = _seconds(raw["max_clock_skew"], "max_clock_skew")
    if "idle_timeout" in raw and (raw["idle_timeout"] is None or raw["idle_timeout"] is False):
        kw["idle_timeout"] = None
    elif "idle_timeout" in raw:
        kw["idle_timeout"] = _seconds(raw["idle_timeout"], "idle_timeout")
        if kw["idle_timeout"] < 0.1:  # swept every quarter of it: a tiny value would spin the loop
            raise ConfigError(f"'{P}.idle_timeout': expected a duration of at least 100ms (or null: never)")
    s = dataclasses.replace(d, **kw)
    _check_exposure(s)
    return s


def _seconds(raw: object, key: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError as e:
        raise ConfigError(f"'{P}.{key}': {e}") from None


def _check_exposure(s: SyslogSettings) -> None:
    """Syslog carries no credentials: anyone who can reach an open port can inject events."""
    if s.allowed_senders or s.allow_any_sender:
        return
    for name, addr in (("udp", s.udp), ("tcp", s.tcp)):
        if addr is not None and not is_loopback(addr[0]):
            raise ConfigError(
                f"'{P}.{name}': {addr[0]} is not a loopback address; list the devices that may send in "
                f"'{P}.allowed_senders' (addresses or networks), or set '{P}.allow_any_sender: true'"
            )
    if s.tls is not None and s.tls.client_ca_file is None and not is_loopback(s.tls.listen[0]):
        raise ConfigError(
            f"'{P}.tls': {s.tls.listen[0]} is not a loopback address; require client certificates "
            f"('{P}.tls.client_ca_file'), list '{P}.allowed_senders', or set '{P}.allow_any_sender: true'"
        )


def _tls(raw: object, where: str) -> TlsListener:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping of {', '.join(sorted(_TLS_KEYS))}")
    _known(raw, _TLS_KEYS, where)
    if "listen" not in raw:
        raise ConfigError(f"'{where}.listen': required, e.g. 127.0.0.1:6514")
    files: dict[str, Path | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = raw.get(key)
        if value is None:
            if key != "client_ca_file":
                raise ConfigError(f"'{where}.{key}': required (a PEM file)")
            files[key] = None
            continue
        if not isinstance(value, str) or not Path(value).is_file():
            raise ConfigError(f"'{where}.{key}': expected the path of a readable file, got {value!r}")
        files[key] = Path(value)
    cert_file, key_file = files["cert_file"], files["key_file"]
    assert cert_file is not None and key_file is not None
    return TlsListener(
        _hostport(raw["listen"], f"{where}.listen"), cert_file, key_file, files["client_ca_file"]
    )


def _networks(raw: object, where: str) -> tuple[Network, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"'{where}': expected a non-empty list of addresses or networks (10.0.0.0/8)")
    out: list[Network] = []
    for i, item in enumerate(raw):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ConfigError(f"'{where}[{i}]': expected an address or network, got {item!r}") from None
    return tuple(out)


def _hostport(value: object, where: str) -> tuple[str, int]:
    try:
        return parse_hostport(value)
    except ValueError as e:
        raise ConfigError(f"'{where}': {e}") from None


def _known(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping")
    for key in raw:
        if key not in known:
            hint = did_you_mean(str(key), known)
            extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(sorted(known))}"
            raise ConfigError(f"'{where}.{key}': unknown key{extra}")
