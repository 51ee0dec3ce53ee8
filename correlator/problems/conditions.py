"""Known-error match conditions: the `match:` language of rule files, compiled once into a predicate.

The rules branch (correlator/rules/matchers.py, `compile_matcher(spec, where)`) was not on main when
this was written, so this module compiles the same syntax for the operators known errors need
(docs/problems.md lists them). After that merge, `compile_conditions` should simply return
`compile_matcher(spec)`: callers only use this one function and the stored conditions are data.
Conditions see the incident's opening event, with `attributes.incident.{rule,key,service,title}` added.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from correlator.event import Event, Severity

Matcher = Callable[[Event], bool]
FIELDS = ("id", "source", "host", "type", "severity", "resource", "message", "fingerprint", "count")
OPERATORS = ("equals", "not_equals", "regex", "in", "glob", "gt", "ge", "lt", "le", "exists", "missing")
_MISSING = object()


class ConditionError(ValueError):
    """The conditions are not valid; the message names the path (`match.host.regex`)."""


def compile_conditions(spec: Any) -> Matcher:
    if spec is None:
        return lambda ev: True
    if not isinstance(spec, Mapping):
        raise ConditionError("match: must be a mapping of field: condition")
    return _compile_map(spec, "match")


def _compile_map(spec: Mapping[str, Any], where: str) -> Matcher:
    parts: list[Matcher] = []
    for key, value in spec.items():
        if key == "all" or key == "any":
            if not isinstance(value, list) or not value:
                raise ConditionError(f"{where}.{key}: must be a non-empty list of conditions")
            subs = [
                _compile_map(_mapping(v, f"{where}.{key}[{i}]"), f"{where}.{key}[{i}]")
                for i, v in enumerate(value)
            ]
            parts.append(_all(subs) if key == "all" else _any(subs))
        elif key == "not":
            parts.append(_negate(_compile_map(_mapping(value, f"{where}.not"), f"{where}.not")))
        else:
            parts.append(_field(key, value, f"{where}.{key}"))
    return _all(parts)


def _mapping(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ConditionError(f"{where}: must be a mapping of field: condition")
    return v


def _negate(m: Matcher) -> Matcher:
    return lambda ev: not m(ev)


def _all(parts: list[Matcher]) -> Matcher:
    return lambda ev: all(p(ev) for p in parts)


def _any(parts: list[Matcher]) -> Matcher:
    return lambda ev: any(p(ev) for p in parts)


def _getter(path: str, where: str) -> Callable[[Event], Any]:
    parts = path.split(".")
    if parts[0] == "attributes" and len(parts) > 1 and all(parts[1:]):
        names = parts[1:]

        def get(ev: Event) -> Any:
            v: Any = ev.attributes
            for n in names:
                if not isinstance(v, Mapping) or n not in v:
                    return _MISSING
                v = v[n]
            return v

        return get
    if path in FIELDS:
        if path == "severity":
            return lambda ev: ev.severity.value
        return lambda ev: getattr(ev, path)
    raise ConditionError(f"{where}: unknown field {path!r}; fields: {', '.join(FIELDS)}, attributes.NAME")


def _field(path: str, cond: Any, where: str) -> Matcher:
    get = _getter(path, where)
    if isinstance(cond, list):
        cond = {"in": cond}
    elif not isinstance(cond, Mapping):
        cond = {"equals": cond}
    tests: list[Callable[[Any], bool]] = []
    for op, arg in cond.items():
        if op not in OPERATORS:
            raise ConditionError(f"{where}: unknown operator {op!r}; operators: {', '.join(OPERATORS)}")
        tests.append(_operator(op, arg, path == "severity", f"{where}.{op}"))
    return lambda ev: (lambda v: all(t(v) for t in tests))(get(ev))


def _operator(op: str, arg: Any, severity: bool, where: str) -> Callable[[Any], bool]:
    if op in ("equals", "not_equals"):
        eq = _equals(arg)
        return eq if op == "equals" else (lambda v: v is _MISSING or not eq(v))
    if op == "in":
        if not isinstance(arg, list):
            raise ConditionError(f"{where}: must be a list")
        eqs = [_equals(a) for a in arg]
        return lambda v: any(e(v) for e in eqs)
    if op == "regex":
        try:
            rx = re.compile(str(arg))
        except re.error as e:
            raise ConditionError(f"{where}: invalid regex {arg!r}: {e}") from None
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op == "glob":
        rx = re.compile(fnmatch.translate(str(arg)))
        return lambda v: isinstance(v, str) and rx.match(v) is not None
    if op in ("exists", "missing"):
        if not isinstance(arg, bool):
            raise ConditionError(f"{where}: must be true or false")
        want_present = arg if op == "exists" else not arg
        return lambda v: (v is not _MISSING and v is not None and v != "") == want_present
    return _compare(op, arg, severity, where)


def _equals(arg: Any) -> Callable[[Any], bool]:
    if isinstance(arg, bool):
        return lambda v: v is arg
    if isinstance(arg, int | float):
        return lambda v: _number(v) == arg
    text = str(arg)
    return lambda v: v is not _MISSING and not isinstance(v, bool) and str(v) == text


def _compare(op: str, arg: Any, severity: bool, where: str) -> Callable[[Any], bool]:
    cmp = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}[op]
    if severity and isinstance(arg, str):
        try:
            rank = float(Severity.parse(arg).rank)
        except ValueError:
            raise ConditionError(f"{where}: not a severity: {arg!r}") from None
        except Exception:
            raise ConditionError(f"{where}: not a severity: {arg!r}") from None
        return lambda v: cmp(float(Severity.parse(v).rank), rank)
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise ConditionError(f"{where}: must be a number")
    limit = float(arg)

    def test(v: Any) -> bool:
        n = _number(v)
        return n is not None and cmp(n, limit)

    return test


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None
