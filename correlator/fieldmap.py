"""Configurable mapping of a foreign JSON document (plus named topic levels) to an Event.

Shared by the MQTT collector and the `mapped` webhook format. The configuration is compiled once
(`parse_field_map`); `FieldMap.build` then runs per message with no parsing of the mapping itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from correlator import jsonpath
from correlator.errors import ConfigError, FieldError
from correlator.event import (
    MAX_MESSAGE_LEN,
    MAX_NAME_LEN,
    TOO_LARGE,
    Event,
    Severity,
    new_id,
    parse_time,
)

_SEVERITIES = {s.value: s for s in Severity}
MAPPABLE = ("id", "time", "host", "type", "severity", "resource", "message", "fingerprint", "attributes")
_MAPPABLE = frozenset(MAPPABLE)
DEFAULTABLE = ("host", "type", "severity", "resource", "message")


@dataclass(frozen=True)
class FieldMap:
    _simple: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _deep: tuple[tuple[str, jsonpath.Path], ...] = field(init=False, repr=False, compare=False)
    _used: frozenset[str | int] = field(init=False, repr=False, compare=False)
    fields: dict[str, jsonpath.Path] = field(default_factory=dict)
    attributes: dict[str, jsonpath.Path] = field(default_factory=dict)
    severity_map: dict[str, Severity] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    rest_to_attributes: bool = False  # top-level keys not mapped become attributes

    def __post_init__(self) -> None:
        # Hot path: one-key paths are a dict.get; only deeper paths walk jsonpath.
        simple = tuple((n, p[0]) for n, p in self.fields.items() if len(p) == 1 and isinstance(p[0], str))
        deep = tuple((n, p) for n, p in self.fields.items() if not (len(p) == 1 and isinstance(p[0], str)))
        used = frozenset(p[0] for p in self.fields.values() if p)
        object.__setattr__(self, "_simple", simple)
        object.__setattr__(self, "_deep", deep)
        object.__setattr__(self, "_used", used)

    def build(self, doc: Any, source: str, received: float, levels: Mapping[str, str] | None = None) -> Event:
        """One Event from `doc`; topic `levels` win over payload fields, which win over defaults.

        Raises FieldError naming the event field and the path it was read from.
        """
        values: dict[str, Any] = dict(self.defaults)
        is_dict = type(doc) is dict
        if is_dict:
            for name, key in self._simple:
                v = doc.get(key)
                if v is not None and v != "":
                    values[name] = v
        for name, path in self._deep:
            v = jsonpath.get(doc, path)
            if v is not jsonpath.MISSING and v is not None and v != "":
                values[name] = v
        attrs: dict[str, Any] = {}
        if self.rest_to_attributes and is_dict:
            used = self._used
            for k, v in doc.items():
                if k not in used:
                    attrs[k] = v
        raw_attrs = values.pop("attributes", None)
        if raw_attrs is not None:
            if not isinstance(raw_attrs, dict):
                raise FieldError("attributes", f"{self._where('attributes')} must be a JSON object")
            attrs.update(raw_attrs)
        for name, path in self.attributes.items():
            v = jsonpath.get(doc, path)
            if v is not jsonpath.MISSING:
                attrs[name] = v
        if levels:
            for name, v in levels.items():
                if name in _MAPPABLE:
                    values[name] = v
                else:
                    attrs[name] = v
        host = self._name(values, "host", True)
        type_ = self._name(values, "type", True)
        resource = self._name(values, "resource", False)
        sev = values.get("severity")
        severity = Severity.INFO if sev is None else self.severity(sev)
        t = values.get("time")
        time_ = received if t is None else parse_time(t)
        ident = values.get("id")
        ident = new_id() if ident is None else str(ident)[:128]
        message = values.get("message", "")
        if not isinstance(message, str):
            message = str(message)
        if len(message) > MAX_MESSAGE_LEN:
            message = message[:MAX_MESSAGE_LEN]
        fp = values.get("fingerprint", "")
        fp = str(fp)[:MAX_NAME_LEN] if fp else ""
        return Event(ident, time_, received, source, host, type_, severity, resource, message, attrs, fp)

    def severity(self, value: object) -> Severity:
        key = value.lower() if isinstance(value, str) else str(value).lower()
        sev = self.severity_map.get(key) or _SEVERITIES.get(key)
        if sev is not None:
            return sev
        try:
            return Severity.parse(key)
        except FieldError:
            raise FieldError(
                "severity",
                f"{self._where('severity')} gave {value!r}: not a severity and not in severity_map",
            ) from None

    def _name(self, values: dict[str, Any], key: str, required: bool) -> str:
        v = values.get(key)
        if v is None or v == "":
            if required:
                raise FieldError(key, f"is required: {self._where(key)} gave nothing and no default is set")
            return ""
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise FieldError(key, f"{self._where(key)} must be a string, got {type(v).__name__}")
        s = str(v)
        if len(s) > MAX_NAME_LEN:
            raise FieldError(key, f"{self._where(key)} longer than {MAX_NAME_LEN} characters", TOO_LARGE)
        return s

    def _where(self, name: str) -> str:
        path = self.fields.get(name)
        return jsonpath.render(path) if path is not None else name


GENERIC_FIELDS = {name: (name,) for name in MAPPABLE}
"""The identity mapping: a payload already in the generic event format."""


def parse_field_map(
    settings: Mapping[str, Any], where: str, default_fields: Mapping[str, jsonpath.Path] | None = None
) -> FieldMap:
    """Compile the `fields`, `attributes`, `severity_map` and `defaults` keys of one mapping section."""
    fields: dict[str, jsonpath.Path] = dict(default_fields or {})
    raw = settings.get("fields")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"'{where}.fields': expected a mapping of event field to JSON path")
        fields = {}
        for name, text in raw.items():
            if name not in MAPPABLE:
                raise ConfigError(
                    f"'{where}.fields.{name}': not an event field; known: {', '.join(MAPPABLE)}"
                )
            fields[name] = _path(text, f"{where}.fields.{name}")
    attributes: dict[str, jsonpath.Path] = {}
    raw = settings.get("attributes")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"'{where}.attributes': expected a mapping of attribute name to JSON path")
        attributes = {str(k): _path(v, f"{where}.attributes.{k}") for k, v in raw.items()}
    sev_map: dict[str, Severity] = {}
    raw = settings.get("severity_map")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"'{where}.severity_map': expected a mapping of source value to severity")
        for k, v in raw.items():
            try:
                sev_map[str(k).lower()] = Severity.parse(v)
            except FieldError as e:
                raise ConfigError(f"'{where}.severity_map.{k}': {e.message}") from None
    defaults: dict[str, str] = {}
    raw = settings.get("defaults")
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"'{where}.defaults': expected a mapping of event field to value")
        for k, v in raw.items():
            if k not in DEFAULTABLE:
                raise ConfigError(
                    f"'{where}.defaults.{k}': no default for it; known: {', '.join(DEFAULTABLE)}"
                )
            if not isinstance(v, str) or not v:
                raise ConfigError(f"'{where}.defaults.{k}': expected a non-empty string, got {v!r}")
            if k == "severity":
                try:
                    Severity.parse(v)
                except FieldError as e:
                    raise ConfigError(f"'{where}.defaults.severity': {e.message}") from None
            defaults[k] = v
    return FieldMap(fields, attributes, sev_map, defaults)


def _path(text: object, where: str) -> jsonpath.Path:
    try:
        return jsonpath.compile_path(text)
    except ValueError as e:
        raise ConfigError(f"'{where}': {e}") from None
