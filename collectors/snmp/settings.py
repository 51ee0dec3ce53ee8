"""The `collectors.snmp` configuration section: defaults, validation, and errors that name the key.

Read once by `create()`; docs/collectors/snmp.md documents every key listed here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.config import parse_duration, parse_hostport
from correlator.errors import ConfigError, did_you_mean
from correlator.secretfile import read_secret

AUTH_PROTOCOLS = ("SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("AES", "AES-192", "AES-256")
# USM security levels, weakest first; the index + 1 is the RFC 3411 securityLevel number.
SECURITY_LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")
POLL_KINDS = ("reachability", "interfaces", "host_resources")
THRESHOLD_KINDS = ("interface", "cpu", "storage")


@dataclass(frozen=True)
class User:
    name: str
    auth_protocol: str | None = None
    auth_key: str = ""
    priv_protocol: str | None = None
    priv_key: str = ""
    engine_ids: tuple[str, ...] = ()  # senders' engine ids, needed for v3 traps (not informs)
    min_security_level: str = "noAuthNoPriv"  # weakest level accepted from this user (SECURITY_LEVELS)

    @property
    def security_level(self) -> str:
        """The level this user is configured for: what its keys allow."""
        return SECURITY_LEVELS[(self.auth_protocol is not None) + (self.priv_protocol is not None)]


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    version: str  # "v2c" | "v3"
    community: str
    user: User | None
    interval: float
    poll: tuple[str, ...]


@dataclass(frozen=True)
class SnmpSettings:
    listen: tuple[str, int] = ("127.0.0.1", 1162)
    communities: tuple[str, ...] = ("public",)
    users: tuple[User, ...] = ()
    engine_id: str | None = None
    hosts: dict[str, str] = field(default_factory=dict)
    max_datagram_bytes: int = 8192
    recv_buffer_bytes: int = 4 << 20
    max_batch_events: int = 5000
    max_pending_events: int = 50_000
    mib_cache_dir: Path | None = None
    poll_timeout: float = 2.0
    poll_retries: int = 1
    poll_concurrency: int = 64
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"interface": 0.9, "cpu": 0.9, "storage": 0.9}
    )
    targets: tuple[Target, ...] = ()


_KEYS = {
    "listen",
    "communities",
    "communities_file",
    "users",
    "engine_id",
    "hosts",
    "max_datagram_bytes",
    "recv_buffer_bytes",
    "max_batch_events",
    "max_pending_events",
    "mib_cache_dir",
    "poll_timeout",
    "poll_retries",
    "poll_concurrency",
    "thresholds",
    "targets",
}
_USER_KEYS = {
    "name",
    "auth_protocol",
    "auth_key",
    "auth_key_file",
    "priv_protocol",
    "priv_key",
    "priv_key_file",
    "engine_ids",
    "min_security_level",
}
_TARGET_KEYS = {"name", "address", "version", "community", "user", "interval", "poll"}
P = "collectors.snmp"


def parse(settings: Mapping[str, Any]) -> SnmpSettings:
    """Validate the raw section; raises ConfigError naming the key (and file:line when known)."""
    _known(settings, _KEYS, P)
    d = SnmpSettings()
    kw: dict[str, Any] = {}
    if "listen" in settings:
        kw["listen"] = _wrap(settings, "listen", P, parse_hostport)
    if "communities" in settings and "communities_file" in settings:
        _fail(settings, "communities_file", P, "give either communities or communities_file, not both")
    if "communities" in settings:
        kw["communities"] = tuple(_strings(settings, "communities", P, secret=True))
    if "communities_file" in settings:
        kw["communities"] = tuple(_secret_file(settings, "communities_file", P).split())
    if "users" in settings:
        kw["users"] = tuple(_user(u, f"{P}.users[{i}]") for i, u in enumerate(_list(settings, "users", P)))
    if settings.get("engine_id") is not None:
        kw["engine_id"] = _hex(settings, "engine_id", P)
    if "hosts" in settings:
        hosts = settings["hosts"] or {}
        if not isinstance(hosts, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in hosts.items()
        ):
            _fail(settings, "hosts", P, "expected a mapping of address -> host name")
        kw["hosts"] = dict(hosts)
    for key in ("max_datagram_bytes", "recv_buffer_bytes", "max_batch_events", "max_pending_events"):
        if key in settings:
            kw[key] = _int(settings, key, P, 1)
    if settings.get("mib_cache_dir") is not None:
        kw["mib_cache_dir"] = Path(_str(settings, "mib_cache_dir", P))
    if "poll_timeout" in settings:
        kw["poll_timeout"] = _wrap(settings, "poll_timeout", P, parse_duration)
    if "poll_retries" in settings:
        kw["poll_retries"] = _int(settings, "poll_retries", P, 0)
    if "poll_concurrency" in settings:
        kw["poll_concurrency"] = _int(settings, "poll_concurrency", P, 1)
    if "thresholds" in settings:
        th = settings["thresholds"]
        if not isinstance(th, Mapping):
            _fail(settings, "thresholds", P, "expected a mapping such as {interface: 0.9}")
        _known(th, set(THRESHOLD_KINDS), f"{P}.thresholds")
        merged = dict(d.thresholds)
        for k in th:
            v = th[k]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
                _fail(th, k, f"{P}.thresholds", f"expected a ratio in (0, 1], got {v!r}")
            merged[k] = float(v)
        kw["thresholds"] = merged
    if "targets" in settings:
        targets = [_target(t, f"{P}.targets[{i}]") for i, t in enumerate(_list(settings, "targets", P))]
        names = [t.name for t in targets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            _fail(settings, "targets", P, f"target names must be unique; repeated: {', '.join(sorted(dup))}")
        kw["targets"] = tuple(targets)
    return SnmpSettings(**{**d.__dict__, **kw})


def _user(raw: Any, where: str) -> User:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping with name, auth_protocol, auth_key, ...")
    _known(raw, _USER_KEYS, where)
    name = _str(raw, "name", where)
    auth = raw.get("auth_protocol")
    priv = raw.get("priv_protocol")
    if auth is not None and auth not in AUTH_PROTOCOLS:
        _fail(raw, "auth_protocol", where, f"expected one of {', '.join(AUTH_PROTOCOLS)}, got {auth!r}")
    if priv is not None and priv not in PRIV_PROTOCOLS:
        _fail(raw, "priv_protocol", where, f"expected one of {', '.join(PRIV_PROTOCOLS)}, got {priv!r}")
    if priv is not None and auth is None:
        _fail(raw, "priv_protocol", where, "privacy needs authentication: set auth_protocol too")
    auth_key = _key(raw, "auth_key", where) if auth else ""
    priv_key = _key(raw, "priv_key", where) if priv else ""
    for key, value in (("auth_key", auth_key), ("priv_key", priv_key)):
        if value and len(value) < 8:
            _fail(raw, key, where, "must be at least 8 characters (RFC 3414)")
    engine_ids: list[str] = []
    if "engine_ids" in raw:
        for i, _ in enumerate(_list(raw, "engine_ids", where)):
            engine_ids.append(_hex(raw["engine_ids"], i, f"{where}.engine_ids"))
    user = User(name, auth, auth_key, priv, priv_key, tuple(engine_ids))
    # Default: the level the user is configured for. Lower only on purpose (a sender that cannot do
    # better); higher than the keys allow could never be met, so it is an error.
    level = raw.get("min_security_level", user.security_level)
    if level not in SECURITY_LEVELS:
        _fail(
            raw, "min_security_level", where, f"expected one of {', '.join(SECURITY_LEVELS)}, got {level!r}"
        )
    if SECURITY_LEVELS.index(level) > SECURITY_LEVELS.index(user.security_level):
        _fail(
            raw,
            "min_security_level",
            where,
            f"{level} needs keys this user does not have (it is configured for {user.security_level})",
        )
    return dataclasses.replace(user, min_security_level=level)


def _target(raw: Any, where: str) -> Target:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping with name, address, version, ...")
    _known(raw, _TARGET_KEYS, where)
    name = _str(raw, "name", where)
    address = _str(raw, "address", where)
    host, port = (address, 161) if ":" not in address else _wrap(raw, "address", where, parse_hostport)
    version = raw.get("version", "v2c")
    if version not in ("v2c", "v3"):
        _fail(raw, "version", where, f"expected 'v2c' or 'v3' (polling needs GETBULK), got {version!r}")
    community = _str(raw, "community", where, secret=True) if "community" in raw else "public"
    user = None
    if version == "v3":
        if "user" not in raw:
            _fail(raw, "version", where, "v3 targets need a 'user' with credentials")
        user = _user(raw["user"], f"{where}.user")
    interval = _wrap(raw, "interval", where, parse_duration) if "interval" in raw else 60.0
    if interval < 1:
        _fail(raw, "interval", where, "must be at least 1s")
    poll = tuple(_strings(raw, "poll", where)) if "poll" in raw else POLL_KINDS
    for kind in poll:
        if kind not in POLL_KINDS:
            _fail(raw, "poll", where, f"expected some of {', '.join(POLL_KINDS)}, got {kind!r}")
    if "reachability" not in poll:
        poll = ("reachability", *poll)  # sysUpTime rides along with every poll: rates and reboots need it
    return Target(name, host, port, version, community, user, interval, poll)


def _where(raw: Any, key: Any) -> str:
    if isinstance(raw, yamlfile.YamlMap) and isinstance(key, str) and key in raw:
        return f"{raw.where(key)}: "
    return ""


def _fail(raw: Any, key: Any, prefix: str, msg: str) -> Any:
    name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"
    raise ConfigError(f"{_where(raw, key)}'{name}': {msg}")


def _known(raw: Mapping[str, Any], keys: set[str], prefix: str) -> None:
    for key in raw:
        if key not in keys:
            hint = did_you_mean(key, keys)
            _fail(
                raw,
                key,
                prefix,
                f"unknown key ({f'did you mean {hint!r}?' if hint else 'known: ' + ', '.join(sorted(keys))})",
            )


def _wrap(raw: Any, key: str, prefix: str, fn: Any) -> Any:
    try:
        return fn(raw[key])
    except ValueError as e:
        return _fail(raw, key, prefix, str(e))


_NOT_SHOWN = "expected a non-empty string (the value is a secret: not shown)"


def _str(raw: Any, key: Any, prefix: str, secret: bool = False) -> str:
    """A non-empty string; a `secret` (community, key) is never echoed in the error, whatever it is:
    an unquoted community of digits is a number in YAML, and a working credential once quoted."""
    v = raw.get(key) if isinstance(raw, Mapping) else raw[key]
    if not isinstance(v, str) or not v:
        _fail(raw, key, prefix, _NOT_SHOWN if secret else f"expected a non-empty string, got {v!r}")
    return str(v)


def _key(raw: Any, key: str, prefix: str) -> str:
    """A secret given inline (`auth_key`) or read from a file (`auth_key_file`), never both."""
    name = f"{key}_file"
    if name not in raw:
        return _str(raw, key, prefix, secret=True)
    if key in raw:
        _fail(raw, name, prefix, f"give either {key} or {name}, not both")
    return _secret_file(raw, name, prefix)


def _secret_file(raw: Any, key: str, prefix: str) -> str:
    return str(_wrap(raw, key, prefix, read_secret))


def _hex(raw: Any, key: Any, prefix: str) -> str:
    v = _str(raw, key, prefix).lower().removeprefix("0x")
    try:
        bytes.fromhex(v)
    except ValueError:
        _fail(raw, key, prefix, f"expected an engine id in hex such as 8000000001020304, got {v!r}")
    if not 5 <= len(v) // 2 <= 32:
        _fail(raw, key, prefix, "an engine id is 5 to 32 octets")
    return v


def _int(raw: Any, key: str, prefix: str, minimum: int) -> int:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        _fail(raw, key, prefix, f"expected a whole number >= {minimum}, got {v!r}")
    return int(v)


def _list(raw: Any, key: str, prefix: str) -> list[Any]:
    v = raw[key]
    if v is None:
        return []
    if not isinstance(v, list):
        _fail(raw, key, prefix, f"expected a list, got {type(v).__name__}")
    return list(v)


def _strings(raw: Any, key: str, prefix: str, secret: bool = False) -> list[str]:
    items = _list(raw, key, prefix)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            _fail(
                raw,
                key,
                prefix,
                f"item {i}: " + (_NOT_SHOWN if secret else f"expected a non-empty string, got {item!r}"),
            )
    return items
