"""The rule-file model: small declarative specs that both parse YAML (with positions) and emit JSON Schema.

Every rule kind declares its keys with these specs, so `correlator rules schema` and the parser can
never disagree. Parsing collects every error in a rule (unknown keys with did-you-mean, wrong types).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from correlator.config import parse_duration
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.fields import compile_field, split_path
from correlator.rules.matchers import MAPPINGS, OPERATORS, compile_matcher
from correlator.rules.templates import compile_template, compile_value
from correlator.yamlfile import Position, YamlList, YamlMap, key_where, value_where


class Spec:
    """One value's type: `parse(value, where)` converts or raises RuleError; `schema()` describes it."""

    doc: str = ""

    def parse(self, value: Any, where: Position | None) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _doc(self, d: dict[str, Any]) -> dict[str, Any]:
        if self.doc:
            d["description"] = self.doc
        return d


@dataclass(frozen=True)
class Str(Spec):
    doc: str = ""
    choices: tuple[str, ...] = ()

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, str) or not value:
            raise RuleError(where, f"expected a non-empty string, got {_show(value)}")
        if self.choices and value not in self.choices:
            raise RuleError(
                where,
                f"expected one of {', '.join(self.choices)}, got {value!r}{suggest(value, self.choices)}",
            )
        return value

    def schema(self) -> dict[str, Any]:
        return self._doc({"enum": list(self.choices)} if self.choices else {"type": "string", "minLength": 1})


@dataclass(frozen=True)
class Bool(Spec):
    doc: str = ""

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, bool):
            raise RuleError(where, f"expected true or false, got {_show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


@dataclass(frozen=True)
class Int(Spec):
    doc: str = ""
    minimum: int = 0

    def parse(self, value: Any, where: Position | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise RuleError(where, f"expected a whole number >= {self.minimum}, got {_show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "integer", "minimum": self.minimum})


_DURATIONS: dict[str, float] = {}  # text -> seconds, as parse_duration reads it
_DURATIONS_KEPT = 1_000


@dataclass(frozen=True)
class Duration(Spec):
    doc: str = ""
    positive: bool = True

    def parse(self, value: Any, where: Position | None) -> Any:
        # A big set writes few distinct durations ('1h' in most rules): each text is read once.
        seconds = _DURATIONS.get(value) if isinstance(value, str) else None
        if seconds is None:
            try:
                seconds = parse_duration(value)
            except ValueError as e:
                raise RuleError(where, str(e)) from None
            if isinstance(value, str) and len(_DURATIONS) < _DURATIONS_KEPT:
                _DURATIONS[value] = seconds
        if self.positive and seconds <= 0:
            raise RuleError(where, f"expected a duration greater than zero, got {value!r}")
        return seconds

    def schema(self) -> dict[str, Any]:
        return self._doc(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*$"},
                    {"type": "number", "minimum": 0},
                ]
            }
        )


@dataclass(frozen=True)
class Template(Spec):
    """A "{field}" template compiled to render(event) -> str; `value=True` keeps a lone field's type."""

    doc: str = ""
    value: bool = False

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, str):
            raise RuleError(where, f"expected a template string such as '{{host}}', got {_show(value)}")
        return compile_value(value, where) if self.value else compile_template(value, where)

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "string"})


@dataclass(frozen=True)
class FieldPath(Spec):
    """A field path compiled to a getter (`writable` checks it names a field a rule may change)."""

    doc: str = ""
    writable: bool = False

    def parse(self, value: Any, where: Position | None) -> Any:
        if self.writable:
            split_path(value, where, writable=True)
            return value
        return compile_field(value, where)

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "string", "pattern": r"^[A-Za-z_][\w-]*(\.[^.]+)*$"})


@dataclass(frozen=True)
class Match(Spec):
    """A `match:` condition, compiled to predicate(event) -> bool."""

    doc: str = "conditions on event fields; all must hold"

    def parse(self, value: Any, where: Position | None) -> Any:
        return compile_matcher(value, where)

    def schema(self) -> dict[str, Any]:
        return self._doc({"$ref": "#/$defs/match"})


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    doc: str = ""
    min_items: int = 1

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, list) or len(value) < self.min_items:
            raise RuleError(
                where, f"expected a list of at least {self.min_items} item(s), got {_show(value)}"
            )
        parse = self.item.parse
        if not isinstance(value, YamlList):  # no item positions: each item's errors point at `where`
            try:
                return [parse(item, where) for item in value]
            except (RuleError, RuleErrors):
                pass  # the loop below collects every item's errors
        positions = value.item_positions if isinstance(value, YamlList) else [where] * len(value)
        out, errors = [], []
        for item, pos in zip(value, positions, strict=True):
            try:
                out.append(parse(item, pos))
            except RuleErrors as e:
                errors.extend(e.errors)
            except RuleError as e:
                errors.append(e)
        _raise(errors)
        return out

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "array", "minItems": self.min_items, "items": self.item.schema()})


@dataclass(frozen=True)
class MapOf(Spec):
    """A mapping with free keys (checked by `key`, e.g. field paths) and values of one spec."""

    value: Spec
    key: Callable[[str, Position | None], Any] | None = None
    doc: str = ""

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, MAPPINGS) or not value:
            raise RuleError(where, f"expected a non-empty mapping, got {_show(value)}")
        out, errors = {}, []
        for k, v in value.items():
            try:
                if self.key is not None:
                    self.key(k, key_where(value, k, where))
                out[k] = self.value.parse(v, value_where(value, k, where))
            except RuleErrors as e:
                errors.extend(e.errors)
            except RuleError as e:
                errors.append(e)
        _raise(errors)
        return out

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "object", "minProperties": 1, "additionalProperties": self.value.schema()})


@dataclass(frozen=True)
class Either(Spec):
    """The first alternative whose shape (bool/str/mapping/...) fits the value parses it."""

    options: tuple[tuple[type | tuple[type, ...], Spec], ...]
    doc: str = ""

    def parse(self, value: Any, where: Position | None) -> Any:
        for kind, spec in self.options:
            if isinstance(value, kind) and not (isinstance(value, bool) and bool not in _types(kind)):
                return spec.parse(value, where)
        names = " or ".join(_shape(k) for k, _ in self.options)
        raise RuleError(where, f"expected {names}, got {_show(value)}")

    def schema(self) -> dict[str, Any]:
        return self._doc({"anyOf": [s.schema() for _, s in self.options]})


@dataclass(frozen=True)
class Key:
    spec: Spec
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Obj(Spec):
    """A mapping with known keys: unknown ones get a did-you-mean; every error in it is reported."""

    keys: dict[str, Key] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        # What `parse` needs of each key, looked up once: a big set parses every rule with these.
        keys = self.keys.items()
        object.__setattr__(self, "_parsers", {k: key.spec.parse for k, key in keys})
        object.__setattr__(self, "_defaults", tuple((k, key.default) for k, key in keys if not key.required))
        object.__setattr__(self, "_required", tuple(k for k, key in keys if key.required))

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, MAPPINGS):
            raise RuleError(where, f"expected a mapping with keys {', '.join(self.keys)}, got {_show(value)}")
        out: dict[str, Any] = {}
        errors: list[RuleError] = []
        parsers: dict[str, Callable[[Any, Position | None], Any]] = self._parsers  # type: ignore[attr-defined]
        at = value.where_value if isinstance(value, YamlMap) and value.placed else None
        for k, v in value.items():
            parse = parsers.get(k)
            if parse is None:
                errors.append(
                    RuleError(
                        key_where(value, k, where),
                        f"unknown key {k!r}{suggest(k, self.keys)}; known: {', '.join(self.keys)}",
                    )
                )
                continue
            try:
                out[k] = parse(v, where if at is None else at(k))
            except RuleErrors as e:
                errors.extend(RuleError(x.position, f"{k}: {x.message}") for x in e.errors)
            except RuleError as e:
                errors.append(RuleError(e.position, f"{k}: {e.message}"))
        if len(out) < len(parsers):  # keys not given: their defaults, or an error when required
            for k, default in self._defaults:  # type: ignore[attr-defined]
                if k not in out and k not in value:
                    out[k] = default
            for k in self._required:  # type: ignore[attr-defined]
                if k not in out and k not in value:
                    errors.append(RuleError(getattr(value, "position", where), f"missing required key {k!r}"))
        _raise(errors)
        return out

    def schema(self) -> dict[str, Any]:
        return self._doc(
            {
                "type": "object",
                "properties": {k: key.spec.schema() for k, key in self.keys.items()},
                "required": [k for k, key in self.keys.items() if key.required],
                "additionalProperties": False,
            }
        )


def match_schema() -> dict[str, Any]:
    """The recursive JSON Schema of a `match:` mapping (the $defs/match of the rule-file schema)."""
    scalar = {"type": ["string", "number", "boolean"]}
    ops = {
        "equals": scalar,
        "not_equals": scalar,
        "regex": {"type": "string", "description": "unanchored (re.search); use ^ and $ to anchor"},
        "in": {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
        "glob": {"type": "string"},
        "gt": {"type": ["number", "string"]},
        "ge": {"type": ["number", "string"]},
        "lt": {"type": ["number", "string"]},
        "le": {"type": ["number", "string"]},
        "exists": {"type": "boolean"},
        "missing": {"type": "boolean"},
        "cidr": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    }
    assert set(ops) == set(OPERATORS)
    condition = {
        "anyOf": [
            scalar,
            {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
            {"type": "object", "properties": ops, "additionalProperties": False, "minProperties": 1},
        ]
    }
    ref = {"$ref": "#/$defs/match"}
    return {
        "type": "object",
        "description": "field path (host, type, attributes.NAME, ...) -> condition; all must hold",
        "properties": {
            "all": {"type": "array", "items": ref, "minItems": 1},
            "any": {"type": "array", "items": ref, "minItems": 1},
            "not": ref,
        },
        "additionalProperties": condition,
    }


def _raise(errors: list[RuleError]) -> None:
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _shape(kind: type | tuple[type, ...]) -> str:
    names = {
        bool: "true/false",
        str: "a string",
        int: "a number",
        float: "a number",
        dict: "a mapping",
        list: "a list",
    }
    return "/".join(dict.fromkeys(names.get(t, t.__name__) for t in _types(kind)))


def _show(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, MAPPINGS):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"
