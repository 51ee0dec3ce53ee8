"""Matchers: the `match:` part of every rule, compiled once into `predicate(event) -> bool` closures.

This is the public API shared by every rule kind (level 1 here, level 2 in correlator/correlation):
`compile_matcher`, `compile_field`, `compile_template` and `RuleError`. docs/rules.md documents it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from correlator.event import Event, Severity
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.fields import Getter, compile_field
from correlator.rules.templates import compile_template
from correlator.yamlfile import Position, YamlList, YamlMap

Matcher = Callable[[Event], bool]

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
_SEVERITY_RANK = {s.value: s.rank for s in Severity}


def compile_matcher(spec: Any, where: Position | None = None) -> Matcher:
    """Compile a `match:` mapping. Keys are field paths (all must hold) or all/any/not.

    `where` is used for errors when `spec` carries no position of its own (plain dicts from code).
    Raises RuleError, or RuleErrors when several entries are wrong.
    """
    if spec is None:
        return _always
    if not isinstance(spec, Mapping):
        raise RuleError(
            _pos(spec, where), f"'match' must be a mapping of field: condition, got {_kind(spec)}"
        )
    parts: list[Matcher] = []
    errors: list[RuleError] = []
    for key, value in spec.items():
        kwhere = _key_pos(spec, key, where)
        try:
            if key in COMBINATORS:
                parts.append(_combinator(key, value, _val_pos(spec, key, where)))
            else:
                parts.append(_field_condition(key, value, kwhere, _val_pos(spec, key, where)))
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
    if not isinstance(spec, Mapping) or path not in spec:
        return None
    value = spec[path]
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return frozenset(value)
    if isinstance(value, Mapping):
        if isinstance(value.get("equals"), str):
            return frozenset((value["equals"],))
        vals = value.get("in")
        if isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals):
            return frozenset(vals)
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
        raise RuleError(where, f"'{key}' must be a non-empty list of conditions, got {_kind(value)}")
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
    return _all_of(parts) if key == "all" else _any_of(parts)


def _field_condition(path: str, value: Any, kwhere: Position | None, vwhere: Position | None) -> Matcher:
    if path in OPERATORS:
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
        return _op_in(path, get, value, vwhere)
    if not isinstance(value, Mapping):
        return _op_equals(path, get, value, vwhere)
    if not value:
        raise RuleError(vwhere, f"{path}: empty condition; operators: {', '.join(OPERATORS)}")
    parts: list[Matcher] = []
    for op, arg in value.items():
        owhere = _key_pos(value, op, vwhere)
        awhere = _val_pos(value, op, vwhere)
        if op not in _OPS:
            raise RuleError(
                owhere, f"unknown operator {op!r}{suggest(op, OPERATORS)}; operators: {', '.join(OPERATORS)}"
            )
        parts.append(_OPS[op](path, get, arg, awhere))
    return _all_of(parts)


# --- operators: each takes (path, getter, argument, position) and returns a Matcher ---


def _op_equals(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if isinstance(arg, bool):
        return lambda ev: get(ev) is arg
    if isinstance(arg, int | float):
        num = float(arg)
        return lambda ev: _number(get(ev)) == num
    if isinstance(arg, str):
        text = arg

        def eq(ev: Event) -> bool:
            v = get(ev)
            return v == text if isinstance(v, str) else _scalar_text(v) == text

        return eq
    raise RuleError(where, f"{path}: 'equals' takes a string, number or boolean, got {_kind(arg)}")


def _op_not_equals(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    eq = _op_equals(path, get, arg, where)
    return lambda ev: not eq(ev)


def _op_in(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, list) or not arg:
        raise RuleError(where, f"{path}: 'in' takes a non-empty list of values, got {_kind(arg)}")
    texts: set[str] = set()
    numbers: set[float] = set()
    for item in arg:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise RuleError(where, f"{path}: 'in' list items must be strings or numbers, got {item!r}")
        if isinstance(item, str):
            texts.add(item)
        else:
            numbers.add(float(item))
            texts.add(_scalar_text(item) or "")
    frozen = frozenset(texts)
    if not numbers:

        def in_texts(ev: Event) -> bool:
            v = get(ev)
            return (v in frozen) if isinstance(v, str) else _scalar_text(v) in frozen

        return in_texts
    nums = frozenset(numbers)

    def in_values(ev: Event) -> bool:
        v = get(ev)
        if isinstance(v, str):
            return v in frozen or _number(v) in nums
        return _number(v) in nums

    return in_values


def _op_regex(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, str):
        raise RuleError(where, f"{path}: 'regex' takes a pattern string, got {_kind(arg)}")
    try:
        search = re.compile(arg).search
    except re.error as e:
        raise RuleError(where, f"{path}: invalid regex {arg!r}: {e}") from None

    def regex(ev: Event) -> bool:
        v = get(ev)
        if isinstance(v, str):
            return search(v) is not None
        text = _scalar_text(v)
        return text is not None and search(text) is not None

    return regex


def _op_glob(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, str):
        raise RuleError(where, f"{path}: 'glob' takes a pattern such as 'Gi*', got {_kind(arg)}")
    match = re.compile(fnmatch.translate(arg)).match

    def glob(ev: Event) -> bool:
        v = get(ev)
        text = v if isinstance(v, str) else _scalar_text(v)
        return text is not None and match(text) is not None

    return glob


def _numeric(
    op: str, cmp: Callable[[float, float], bool]
) -> Callable[[str, Getter, Any, Position | None], Matcher]:
    def build(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
        if path == "severity" and isinstance(arg, str):
            if arg not in _SEVERITY_RANK:
                raise RuleError(
                    where, f"severity: {op!r} takes a severity ({', '.join(_SEVERITY_RANK)}), got {arg!r}"
                )
            rank = float(_SEVERITY_RANK[arg])
            return lambda ev: cmp(float(ev.severity.rank), rank)
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise RuleError(where, f"{path}: {op!r} takes a number, got {_kind(arg)}")
        bound = float(arg)

        def compare(ev: Event) -> bool:
            v = _number(get(ev))
            return v is not None and cmp(v, bound)

        return compare

    return build


def _op_exists(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, bool):
        raise RuleError(where, f"{path}: 'exists' takes true or false, got {_kind(arg)}")
    if arg:
        return lambda ev: _present(get(ev))
    return lambda ev: not _present(get(ev))


def _op_missing(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, bool):
        raise RuleError(where, f"{path}: 'missing' takes true or false, got {_kind(arg)}")
    return _op_exists(path, get, not arg, where)


def _op_cidr(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    items = arg if isinstance(arg, list) else [arg]
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise RuleError(
                where, f"{path}: 'cidr' takes networks such as 10.0.0.0/8, got {item!r}"
            ) from None
    networks = tuple(nets)

    def cidr(ev: Event) -> bool:
        v = get(ev)
        if not isinstance(v, str):
            return False
        try:
            addr = ipaddress.ip_address(v.partition("%")[0])
        except ValueError:
            return False
        return any(addr in n for n in networks)

    return cidr


_OPS: dict[str, Callable[[str, Getter, Any, Position | None], Matcher]] = {
    "equals": _op_equals,
    "not_equals": _op_not_equals,
    "regex": _op_regex,
    "in": _op_in,
    "glob": _op_glob,
    "gt": _numeric("gt", lambda a, b: a > b),
    "ge": _numeric("ge", lambda a, b: a >= b),
    "lt": _numeric("lt", lambda a, b: a < b),
    "le": _numeric("le", lambda a, b: a <= b),
    "exists": _op_exists,
    "missing": _op_missing,
    "cidr": _op_cidr,
}


def _present(v: Any) -> bool:
    return v is not None and v != ""


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _scalar_text(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else str(v)
    if isinstance(v, str):
        return v
    return None


def _pos(node: Any, default: Position | None) -> Position | None:
    return getattr(node, "position", None) or default


def _key_pos(spec: Any, key: str, default: Position | None) -> Position | None:
    return spec.where(key) if isinstance(spec, YamlMap) else default


def _val_pos(spec: Any, key: str, default: Position | None) -> Position | None:
    return spec.where_value(key) if isinstance(spec, YamlMap) else default


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"boolean {v!r}"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"


__all__ = [
    "OPERATORS",
    "Matcher",
    "RuleError",
    "RuleErrors",
    "compile_field",
    "compile_matcher",
    "compile_template",
    "equality_values",
]
