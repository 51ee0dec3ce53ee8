"""The matcher operators (equals, regex, in, glob, numeric, exists, cidr, ...) as closure builders.

Each takes (field path, getter, argument, position), validates the argument once and returns a
predicate; correlator/rules/matchers.py picks them by name. docs/rules.md documents their semantics.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

from correlator.event import SEVERITY_RANK, Event, Severity
from correlator.rules.errors import RuleError
from correlator.rules.fields import Getter
from correlator.yamlfile import Position

Matcher = Callable[[Event], bool]


def op_equals(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if isinstance(arg, bool):
        return lambda ev: get(ev) is arg
    if isinstance(arg, (int, float)):  # a tuple: `int | float` makes a union object per call
        num = float(arg)
        return lambda ev: _number(get(ev)) == num
    if isinstance(arg, str):
        text = arg
        parts = path.split(".")
        if len(parts) == 2 and parts[0] == "attributes":
            # `attributes.status: firing`, the commonest condition: the getter's read done here,
            # one call less per event
            name = parts[1]

            def eq_attribute(ev: Event) -> bool:
                v = ev.attributes.get(name)
                if isinstance(v, str):
                    return v == text
                return v is not None and scalar_text(v) == text

            return eq_attribute

        def eq(ev: Event) -> bool:
            v = get(ev)
            if isinstance(v, str):
                return v == text
            # a missing attribute (the common miss) without the call: scalar_text(None) is None
            return v is not None and scalar_text(v) == text

        return eq
    raise RuleError(where, f"{path}: 'equals' takes a string, number or boolean, got {kind_of(arg)}")


def op_not_equals(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    eq = op_equals(path, get, arg, where)
    return lambda ev: not eq(ev)


def op_in(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, list) or not arg:
        raise RuleError(where, f"{path}: 'in' takes a non-empty list of values, got {kind_of(arg)}")
    texts: set[str] = set()
    numbers: set[float] = set()
    for item in arg:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise RuleError(where, f"{path}: 'in' list items must be strings or numbers, got {item!r}")
        if isinstance(item, str):
            texts.add(item)
        else:
            numbers.add(float(item))
            texts.add(scalar_text(item) or "")
    frozen = frozenset(texts)
    if not numbers:

        def in_texts(ev: Event) -> bool:
            v = get(ev)
            if isinstance(v, str):
                return v in frozen
            return v is not None and scalar_text(v) in frozen  # None: a missing attribute

        return in_texts
    nums = frozenset(numbers)

    def in_values(ev: Event) -> bool:
        v = get(ev)
        if isinstance(v, str):
            return v in frozen or _number(v) in nums
        return v is not None and _number(v) in nums

    return in_values


def op_regex(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, str):
        raise RuleError(where, f"{path}: 'regex' takes a pattern string, got {kind_of(arg)}")
    try:
        search = re.compile(arg).search
    except re.error as e:
        raise RuleError(where, f"{path}: invalid regex {arg!r}: {e}") from None

    def regex(ev: Event) -> bool:
        v = get(ev)
        if isinstance(v, str):
            return search(v) is not None
        text = scalar_text(v)
        return text is not None and search(text) is not None

    return regex


def op_glob(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, str):
        raise RuleError(where, f"{path}: 'glob' takes a pattern such as 'Gi*', got {kind_of(arg)}")
    if arg.endswith("*") and not any(c in arg[:-1] for c in "*?["):
        # 'webhook:*', 'Gi*': a prefix test, several times cheaper than the regex fnmatch makes.
        prefix = arg[:-1]

        def glob_prefix(ev: Event) -> bool:
            v = get(ev)
            if isinstance(v, str):
                return v.startswith(prefix)
            text = scalar_text(v)
            return text is not None and text.startswith(prefix)

        return glob_prefix
    match = re.compile(fnmatch.translate(arg)).match

    def glob(ev: Event) -> bool:
        v = get(ev)
        text = v if isinstance(v, str) else scalar_text(v)
        return text is not None and match(text) is not None

    return glob


def _numeric(
    op: str, cmp: Callable[[float, float], bool]
) -> Callable[[str, Getter, Any, Position | None], Matcher]:
    def build(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
        if path == "severity" and isinstance(arg, str):
            if arg not in SEVERITY_RANK:
                raise RuleError(
                    where,
                    f"severity: {op!r} takes a severity ({', '.join(s.value for s in Severity)}), got {arg!r}",
                )
            rank = float(SEVERITY_RANK[arg])
            return lambda ev: cmp(float(ev.severity.rank), rank)
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise RuleError(where, f"{path}: {op!r} takes a number, got {kind_of(arg)}")
        bound = float(arg)

        def compare(ev: Event) -> bool:
            v = _number(get(ev))
            return v is not None and cmp(v, bound)

        return compare

    return build


def op_exists(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, bool):
        raise RuleError(where, f"{path}: 'exists' takes true or false, got {kind_of(arg)}")
    # present: neither missing (None) nor empty text, tested inline (one call less per event)
    names = path.split(".")
    if arg and names[0] == "attributes" and len(names) == 3:
        # `attributes.labels.alertname: {exists: true}`: the getter's read done here, a call less
        k1, k2 = names[1], names[2]

        def exists_nested(ev: Event) -> bool:
            v = ev.attributes.get(k1)
            v = v.get(k2) if isinstance(v, dict) else None
            return v is not None and v != ""

        return exists_nested
    if arg:
        return lambda ev: (v := get(ev)) is not None and v != ""
    return lambda ev: (v := get(ev)) is None or v == ""


def op_missing(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    if not isinstance(arg, bool):
        raise RuleError(where, f"{path}: 'missing' takes true or false, got {kind_of(arg)}")
    return op_exists(path, get, not arg, where)


def op_cidr(path: str, get: Getter, arg: Any, where: Position | None) -> Matcher:
    items = arg if isinstance(arg, list) else [arg]
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise RuleError(
                where, f"{path}: 'cidr' takes networks such as 10.0.0.0/8, got {item!r}"
            ) from None
    # Networks as (family, network bits, mask) integers: the test is one inet_pton and a mask,
    # about 20x cheaper than building an ipaddress object per event.
    v4 = tuple((int(n.network_address), int(n.netmask)) for n in nets if n.version == 4)
    v6 = tuple((int(n.network_address), int(n.netmask)) for n in nets if n.version == 6)

    def cidr(ev: Event) -> bool:
        v = get(ev)
        if not isinstance(v, str):
            return False
        try:
            if ":" in v:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, v.partition("%")[0]))
                return any(value & mask == net for net, mask in v6)
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, v))
        except OSError:
            return False
        return any(value & mask == net for net, mask in v4)

    return cidr


OPS: dict[str, Callable[[str, Getter, Any, Position | None], Matcher]] = {
    "equals": op_equals,
    "not_equals": op_not_equals,
    "regex": op_regex,
    "in": op_in,
    "glob": op_glob,
    "gt": _numeric("gt", lambda a, b: a > b),
    "ge": _numeric("ge", lambda a, b: a >= b),
    "lt": _numeric("lt", lambda a, b: a < b),
    "le": _numeric("le", lambda a, b: a <= b),
    "exists": op_exists,
    "missing": op_missing,
    "cidr": op_cidr,
}


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


def scalar_text(v: Any) -> str | None:
    """What an equality compares a number or boolean by: its text (None for anything else)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else str(v)
    if isinstance(v, str):
        return v
    return None


def kind_of(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"boolean {v!r}"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"
