"""Matchers: the `match:` part of every rule, compiled once into `predicate(event) -> bool` closures.

This is the public API shared by every rule kind (level 1 here, level 2 in correlator/correlation):
`compile_matcher`, `compile_field`, `compile_template` and `RuleError`. docs/rules.md documents it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from correlator.event import Event
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.fields import compile_field
from correlator.rules.operators import OPS, kind_of, op_equals, op_in, scalar_text
from correlator.rules.templates import compile_template
from correlator.yamlfile import Position, YamlList, YamlMap, key_where, value_where

Matcher = Callable[[Event], bool]
# A tuple, not `dict | Mapping`: that expression makes a new union object wherever it is evaluated,
# and a dict is found by the first member without the ABC's check.
MAPPINGS = (dict, Mapping)

OPERATORS = (
    "equals",
    "not_equals",
    "regex",
    "in",
    "glob",
    "gt",
    "ge",
    "lt",
    "le",
    "exists",
    "missing",
    "cidr",
)
COMBINATORS = ("all", "any", "not")
_OPERATORS = frozenset(OPERATORS)
PATTERN_FIELDS = ("type", "source")  # fields with few distinct values, where glob pins are indexed too


def compile_matcher(spec: Any, where: Position | None = None) -> Matcher:
    """Compile a `match:` mapping. Keys are field paths (all must hold) or all/any/not.

    `where` is used for errors when `spec` carries no position of its own (plain dicts from code).
    Raises RuleError, or RuleErrors when several entries are wrong.
    """
    if spec is None:
        return _always
    if not isinstance(spec, MAPPINGS):
        raise RuleError(
            _pos(spec, where), f"'match' must be a mapping of field: condition, got {kind_of(spec)}"
        )
    parts: list[Matcher] = []
    errors: list[RuleError] = []
    placed = spec if isinstance(spec, YamlMap) and spec.placed else None  # else errors are at `where`
    for key, value in spec.items():
        kwhere = placed.where(key) if placed is not None else where
        vwhere = placed.where_value(key) if placed is not None else where
        try:
            if key in COMBINATORS:
                parts.append(_combinator(key, value, vwhere))
            else:
                parts.append(_field_condition(key, value, kwhere, vwhere))
        except RuleErrors as e:
            errors.extend(e.errors)
        except RuleError as e:
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)
    return _all_of(parts)


def equality_values(spec: Any, path: str) -> frozenset[str] | None:
    """The text values `path` must equal for `spec` to match, if the top level pins it; else None.

    The rule index uses this (type, source, host) so an event only meets rules that can match it.
    """
    if not isinstance(spec, MAPPINGS) or path not in spec:
        return None
    value = spec[path]
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return frozenset(value)
    if isinstance(value, MAPPINGS):
        if isinstance(value.get("equals"), str):
            return frozenset((value["equals"],))
        vals = value.get("in")
        if isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals):
            return frozenset(vals)
    return None


def is_plain_pin(cond: Any) -> bool:
    """The condition on a field is nothing but text values it must equal (`x`, `[x, y]`,
    `{equals: x}`, `{in: [x, y]}`): a value among `equality_values` is all it takes to hold."""
    if isinstance(cond, str):  # the commonest, and for a text the ABC's check below is slow
        return True
    if isinstance(cond, MAPPINGS):
        if len(cond) != 1:
            return False
        cond = cond.get("equals", cond.get("in"))
        if isinstance(cond, str):
            return True
    return isinstance(cond, list) and bool(cond) and all(isinstance(v, str) for v in cond)


def glob_pin(spec: Any) -> tuple[str, Callable[[str], Any]] | None:
    """`type: {glob: ...}` or `source: {glob: ...}` at the top level of `spec`: (field, test of a
    value), so a rule index tests the pattern once per distinct type or source (both few) instead of
    once per event. None when `spec` pins neither by a glob."""
    if not isinstance(spec, Mapping):
        return None
    for fname in PATTERN_FIELDS:
        cond = spec.get(fname)
        if isinstance(cond, Mapping) and isinstance(cond.get("glob"), str):
            return fname, re.compile(fnmatch.translate(cond["glob"])).match
    return None


def _always(ev: Event) -> bool:
    return True


def _all_of(parts: list[Matcher]) -> Matcher:
    if not parts:
        return _always
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda ev: a(ev) and b(ev)
    if len(parts) == 3:
        a, b, c = parts
        return lambda ev: a(ev) and b(ev) and c(ev)
    seq = tuple(parts)

    def all_of(ev: Event) -> bool:
        for m in seq:  # noqa: SIM110 - a plain loop is faster than all() over a generator
            if not m(ev):
                return False
        return True

    return all_of


def _any_of(parts: list[Matcher]) -> Matcher:
    seq = tuple(parts)

    def any_of(ev: Event) -> bool:
        for m in seq:  # noqa: SIM110 - a plain loop is faster than any() over a generator
            if m(ev):
                return True
        return False

    return any_of


def _combinator(key: str, value: Any, where: Position | None) -> Matcher:
    if key == "not":
        inner = compile_matcher(value, where)
        return lambda ev: not inner(ev)
    if not isinstance(value, list) or not value:
        raise RuleError(where, f"'{key}' must be a non-empty list of conditions, got {kind_of(value)}")
    parts: list[Matcher] = []
    errors: list[RuleError] = []
    positions = value.item_positions if isinstance(value, YamlList) else [where] * len(value)
    for item, ipos in zip(value, positions, strict=True):
        try:
            parts.append(compile_matcher(item, ipos))
        except RuleErrors as e:
            errors.extend(e.errors)
        except RuleError as e:
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)
    if key == "all":
        return _all_of(parts)
    alternatives = _attribute_equalities(value)
    return _any_of(parts) if alternatives is None else _any_equal(alternatives)


# (attribute name, name within it or None, text): one alternative of `_any_equal`
_Equality = tuple[str, str | None, str]


def _attribute_equalities(items: list[Any]) -> tuple[_Equality, ...] | None:
    """The alternatives of an `any` when each is one attribute path of one or two names equal to a
    text (`- attributes.labels.alertname: Watchdog`); None for any other `any`."""
    out = []
    for item in items:
        if not isinstance(item, MAPPINGS) or len(item) != 1:
            return None
        ((path, cond),) = item.items()
        if not isinstance(path, str) or not isinstance(cond, str):
            return None
        names = path.split(".")
        if names[0] != "attributes" or len(names) not in (2, 3):
            return None
        out.append((names[1], names[2] if len(names) == 3 else None, cond))
    return tuple(out)


def _any_equal(alternatives: tuple[_Equality, ...]) -> Matcher:
    """An `any` of attribute equalities to text as one call: what `_any_of` over their `op_equals`
    matchers decides (a number or boolean compared by its text), without a call per alternative
    and per getter (measured: ~5,000 instructions per event for two alternatives, ~1,500 so)."""

    def any_equal(ev: Event) -> bool:
        attrs = ev.attributes
        for name, inner, text in alternatives:
            v = attrs.get(name)
            if inner is not None:
                v = v.get(inner) if isinstance(v, dict) else None
            if isinstance(v, str):
                if v == text:
                    return True
            elif v is not None and scalar_text(v) == text:
                return True
        return False

    return any_equal


def _field_condition(path: str, value: Any, kwhere: Position | None, vwhere: Position | None) -> Matcher:
    if path in _OPERATORS:
        raise RuleError(
            kwhere, f"{path!r} is an operator: write it under a field, as in 'host: {{{path}: ...}}'"
        )
    try:
        get = compile_field(path, kwhere)
    except RuleError as e:
        if path not in COMBINATORS and "." not in path:
            hint = suggest(path, (*COMBINATORS,))
            if hint:
                raise RuleError(kwhere, e.message.split(";")[0] + hint) from None
        raise
    if value is None:
        raise RuleError(vwhere, f"{path}: no condition given; write {{exists: true}} or {{missing: true}}")
    if isinstance(value, list):
        return op_in(path, get, value, vwhere)
    # A text first: the commonest condition, and for it the Mapping test is the ABC's slow check.
    if isinstance(value, str) or not isinstance(value, MAPPINGS):
        return op_equals(path, get, value, vwhere)
    if not value:
        raise RuleError(vwhere, f"{path}: empty condition; operators: {', '.join(OPERATORS)}")
    parts: list[Matcher] = []
    for op, arg in value.items():
        owhere = key_where(value, op, vwhere)
        awhere = value_where(value, op, vwhere)
        if op not in OPS:
            raise RuleError(
                owhere, f"unknown operator {op!r}{suggest(op, OPERATORS)}; operators: {', '.join(OPERATORS)}"
            )
        parts.append(OPS[op](path, get, arg, awhere))
    return _all_of(parts)


def _pos(node: Any, default: Position | None) -> Position | None:
    return getattr(node, "position", None) or default


__all__ = [
    "OPERATORS",
    "Matcher",
    "RuleError",
    "RuleErrors",
    "compile_field",
    "compile_matcher",
    "compile_template",
    "equality_values",
    "glob_pin",
    "is_plain_pin",
]
