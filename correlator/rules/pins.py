"""What a level-1 rule's top-level `match` says that the rule index can decide without the rule.

A condition on `type`, `source` or `host` depends on that one field alone, so the index evaluates it
once per distinct value (few types and sources; hosts by the thousand, still far fewer than events).
A condition on `attributes.NAME...` that cannot hold while NAME is absent makes NAME's presence a
necessary condition, decided from the event's attribute names; one that is nothing but text values
the attribute must equal is decided per distinct value, as the fields are. correlator/rules/index.py
uses them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from correlator.rules.matchers import Matcher, compile_matcher, equality_values, is_plain_pin
from correlator.yamlfile import Position

PIN_FIELDS = ("type", "source", "host")
# Operators that are false for a missing attribute (the getter gives None): each one needs the
# attribute present. not_equals, missing and `exists: false` hold for a missing one.
_NEEDS_PRESENCE = frozenset(("equals", "in", "regex", "glob", "gt", "ge", "lt", "le", "cidr"))


@dataclass(frozen=True, slots=True)
class FieldPin:
    """The top-level condition of a rule on one of PIN_FIELDS.

    `values`: text values the field must equal for the condition to hold (None: not known), which
    files the rule under them; `test`: the whole condition, on an object carrying the field, or
    None when being among `values` is all it takes.
    """

    field: str
    values: frozenset[str] | None
    test: Matcher | None


def field_pins(spec: Any, where: Position | None = None) -> tuple[FieldPin, ...]:
    """The pins of a `match` mapping on type, source and host, in that order."""
    if not isinstance(spec, Mapping):
        return ()
    pins = []
    for name in PIN_FIELDS:
        if name not in spec:
            continue
        cond = spec[name]
        values = equality_values(spec, name)
        plain = values is not None and is_plain_pin(cond)
        pins.append(FieldPin(name, values, None if plain else compile_matcher({name: cond}, where)))
    return tuple(pins)


@dataclass(frozen=True, slots=True)
class ValuePin:
    """A top-level condition of a rule that an attribute path equal one of some text values
    (`attributes.status: firing`, `attributes.labels.severity: {in: [...]}`).

    `name`: the top-level attribute the path reads (what an earlier rule would have to write to
    change it); `test`: the condition itself, for a value that is not text (a number, a list).
    """

    path: str
    name: str
    values: frozenset[str]
    test: Matcher


def value_pins(spec: Any, where: Position | None = None) -> tuple[ValuePin, ...]:
    """The attribute conditions of a `match` mapping that are plain text values, in written order."""
    if not isinstance(spec, Mapping):
        return ()
    pins = []
    for path, cond in spec.items():
        if not isinstance(path, str) or not path.startswith("attributes.") or not is_plain_pin(cond):
            continue
        values = equality_values(spec, path)
        if values is not None:
            name = path.split(".")[1]
            pins.append(ValuePin(path, name, values, compile_matcher({path: cond}, where)))
    return tuple(pins)


def beyond_pins(spec: Any) -> dict[str, Any] | None:
    """The top-level conditions of `spec` the field pins leave for the rule to test (None: none)."""
    if not isinstance(spec, Mapping):
        return None
    rest = {k: c for k, c in spec.items() if k not in PIN_FIELDS}
    return rest or None


def beyond_values(spec: Any, decided: frozenset[str]) -> dict[str, Any] | None:
    """`beyond_pins` without the attribute paths in `decided` (value pins the index decides)."""
    rest = beyond_pins(spec)
    if rest is None:
        return None
    left = {k: c for k, c in rest.items() if k not in decided}
    return left or None


def needed_attributes(spec: Any) -> frozenset[str]:
    """Top-level attribute names without which `spec` cannot hold (`attributes.level: debug` needs
    `level`; `attributes.labels.severity: {in: [...]}` needs `labels`)."""
    if not isinstance(spec, Mapping):
        return frozenset()
    names = set()
    for key, cond in spec.items():
        if not isinstance(key, str) or not key.startswith("attributes."):
            continue
        name = key.split(".")[1]
        if not name or cond is None:
            continue
        if isinstance(cond, Mapping):
            if any(op in _NEEDS_PRESENCE or (op == "exists" and arg is True) for op, arg in cond.items()):
                names.add(name)
        else:  # a value (equals) or a list (in)
            names.add(name)
    return frozenset(names)
