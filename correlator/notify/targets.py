"""Incident notification targets: the settings every notifier shares (send_on, match, retries) and
the dispatch by `type` to the notifier module that parses the rest and renders the bodies.

`incidents.notify` in correlator.yaml is parsed here (called from incidents/settings.py); the Notifier
(incidents.py) hands each rendered body to the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from correlator.config import parse_duration
from correlator.errors import ConfigError, did_you_mean
from correlator.notify.outbox import Endpoint
from correlator.yamlfile import YamlList, YamlMap

NOTIFY_KINDS = ("open", "update", "resolve", "close", "major", "escalate")
MATCH_FIELDS = ("priority", "service", "assignment_group", "severity", "host", "category")
MAX_RETRY_DELAY = 60.0  # caps retry_delay's doubling and any Retry-After

COMMON_KEYS = frozenset({"type", "send_on", "match", "timeout", "retries", "retry_delay", "max_age"})


class Channel(Protocol):
    """What a notifier module builds from a target's settings."""

    def render(self, kind: str, doc: dict[str, Any]) -> bytes | None:
        """The body for one notice; None when this notifier sends nothing for `kind`."""

    def endpoint(self, target: NotifyTarget) -> Endpoint:
        """Where and how the outbox delivers this target's bodies."""


@dataclass(frozen=True, slots=True)
class Match:
    """Routing: a field -> allowed values; a notice goes to the target when every field listed has
    one of its values (an empty Match takes everything)."""

    fields: tuple[tuple[str, frozenset[str]], ...] = ()

    def __call__(self, doc: Mapping[str, Any]) -> bool:
        return all(str(doc.get(name) or "") in allowed for name, allowed in self.fields)


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    name: str
    url: str
    on: frozenset[str]
    template: str | None  # webhook only: string.Template body; None sends the default JSON document
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0
    retries: int = 3
    retry_delay: float = 1.0
    max_age: float = 86400.0  # older notices are dropped, not sent late
    type: str = "webhook"
    match: Match = field(default_factory=Match)
    channel: Channel | None = None  # None: the generic webhook with `template`

    def wants(self, kind: str, doc: Mapping[str, Any]) -> bool:
        """Subscribed to `kind` and routed here by `match` (an escalation step names targets itself)."""
        return kind in self.on and self.match(doc)


class Module(Protocol):
    """A notifier module: its own keys, its default `send_on`, and `build`."""

    @property
    def KEYS(self) -> frozenset[str]: ...  # its own settings, beside COMMON_KEYS

    @property
    def DEFAULT_ON(self) -> tuple[str, ...]: ...  # `send_on` when not set

    def build(self, spec: Mapping[str, Any], where: str) -> tuple[str, Channel]:
        """(the URL shown in logs and the API, the channel) from the target's settings."""


def parse_targets(raw: Any, modules: Mapping[str, Module]) -> dict[str, NotifyTarget]:
    """`incidents.notify`: {name: {type, ...}}; `modules` maps each type to its notifier module."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{pos(raw)}'incidents.notify': expected a mapping of target name to settings")
    out: dict[str, NotifyTarget] = {}
    for name, spec in raw.items():
        where = f"incidents.notify.{name}"
        if not isinstance(spec, Mapping):
            fail(raw, name, where, "expected a mapping with at least 'url' (or 'type' and its settings)")
        kind = spec.get("type", "webhook")
        if kind not in modules:
            fail(spec, "type", f"{where}.type", f"expected one of {', '.join(modules)}")
        module = modules[kind]
        known(spec, COMMON_KEYS | module.KEYS, where)
        # Not 'on': YAML 1.1 reads a bare `on:` key as the boolean true.
        on = spec.get("send_on", list(module.DEFAULT_ON))
        if not isinstance(on, list) or any(k not in NOTIFY_KINDS for k in on):
            fail(spec, "send_on", f"{where}.send_on", f"expected a list of {', '.join(NOTIFY_KINDS)}")
        retries = spec.get("retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            fail(spec, "retries", f"{where}.retries", "expected a whole number >= 0")
        url, channel = module.build(spec, where)
        out[name] = NotifyTarget(
            name=name,
            url=url,
            on=frozenset(on),
            template=spec.get("template") if kind == "webhook" else None,
            content_type=spec.get("content_type", "application/json"),
            headers=tuple((str(k), v) for k, v in headers(spec, where).items()),
            timeout=duration(spec, "timeout", f"{where}.timeout", 5.0),
            retries=retries,
            retry_delay=duration(spec, "retry_delay", f"{where}.retry_delay", 1.0),
            max_age=duration(spec, "max_age", f"{where}.max_age", 86400.0),
            type=kind,
            match=_match(spec, where),
            channel=channel,
        )
    return out


def endpoint(target: NotifyTarget, **overrides: Any) -> Endpoint:
    """The outbox endpoint of a target from its common settings; `retry_delay` is the first backoff."""
    kw: dict[str, Any] = {
        "name": target.name,
        "url": target.url,
        "timeout": target.timeout,
        "retries": target.retries,
        "backoff": target.retry_delay,
        "max_backoff": MAX_RETRY_DELAY,
        "headers": {"Content-Type": target.content_type, **dict(target.headers)},
        "max_age": target.max_age,
    }
    return Endpoint(**(kw | overrides))


def _match(spec: Mapping[str, Any], where: str) -> Match:
    raw = spec.get("match") or {}
    if not isinstance(raw, Mapping):
        fail(spec, "match", f"{where}.match", "expected a mapping like {priority: [P1, P2], service: [dns]}")
    fields: list[tuple[str, frozenset[str]]] = []
    for name, values in raw.items():
        if name not in MATCH_FIELDS:
            hint = did_you_mean(str(name), MATCH_FIELDS)
            extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(MATCH_FIELDS)}"
            fail(raw, name, f"{where}.match.{name}", f"unknown field{extra}")
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            fail(raw, name, f"{where}.match.{name}", "expected a value or a non-empty list of values")
        fields.append((str(name), frozenset(values)))
    return Match(tuple(fields))


# Helpers the notifier modules share for their own keys.


def url(spec: Mapping[str, Any], where: str, default: str | None = None) -> str:
    value = spec.get("url", default)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        fail(spec, "url", f"{where}.url", "expected an http:// or https:// URL")
    return value


def headers(spec: Mapping[str, Any], where: str) -> dict[str, str]:
    value = spec.get("headers") or {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        fail(spec, "headers", f"{where}.headers", "expected a mapping of header name to string")
    return {str(k): v for k, v in value.items()}


def duration(m: Mapping[str, Any], key: str, name: str, default: float | None = None) -> float:
    if key not in m and default is not None:
        return default
    try:
        return parse_duration(m[key])
    except ValueError as e:
        fail(m, key, name, str(e))


def known(m: Mapping[str, Any], keys: frozenset[str] | set[str], prefix: str) -> None:
    for key in m:
        if key not in keys:
            hint = did_you_mean(str(key), keys)
            extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(sorted(keys))}"
            fail(m, key, f"{prefix}.{key}", f"unknown key{extra}")


def fail(m: Any, key: Any, name: str, message: str) -> NoReturn:
    where = f"{m.where(key)}: " if isinstance(m, YamlMap) else ""
    raise ConfigError(f"{where}'{name}': {message}")


def pos(value: Any) -> str:
    return f"{value.position}: " if isinstance(value, YamlMap | YamlList) else ""
