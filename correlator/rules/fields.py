"""Field paths such as `host` or `attributes.ifDescr`: compiled once into getters and setters.

Matchers, templates, actions and level-2 `group_by` keys all address event data through these, so
one rule file vocabulary covers every rule kind.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from correlator.errors import FieldError
from correlator.event import Event, Severity
from correlator.rules.errors import RuleError, suggest
from correlator.yamlfile import Position

Getter = Callable[[Event], Any]
Setter = Callable[[Event, Any], None]

# Every top-level field of Event a rule may read; `attributes.NAME[.NAME...]` reads nested attributes.
READABLE = (
    "id",
    "time",
    "received",
    "source",
    "host",
    "type",
    "severity",
    "resource",
    "message",
    "fingerprint",
    "count",
    "last_seen",
)
# Fields an action may change; id, times, source and the de-duplication counters belong to the daemon.
WRITABLE = ("host", "type", "severity", "resource", "message", "fingerprint")
TEXT_FIELDS = frozenset(("host", "type", "resource", "message", "fingerprint"))  # writable, always text
# Fields always text and read as they are: the getter of each is attrgetter(field), so a key or a
# template can use the value without a check or conversion.
PLAIN_TEXT_FIELDS = frozenset(("id", "source", *TEXT_FIELDS))


def split_path(path: object, where: Position | None, writable: bool = False) -> list[str]:
    """Validate a field path and return its parts; raises RuleError naming the known fields."""
    allowed = WRITABLE if writable else READABLE
    if not isinstance(path, str) or not path:
        raise RuleError(where, f"a field name must be a non-empty string, got {path!r}")
    parts = path.split(".")
    head = parts[0]
    if head == "attributes":
        if len(parts) < 2 or not all(parts[1:]):
            raise RuleError(where, f"{path!r}: name the attribute, as in 'attributes.ifDescr'")
        return parts
    if head in allowed and len(parts) == 1:
        return parts
    if head in READABLE and len(parts) == 1:
        raise RuleError(where, f"field {head!r} cannot be changed by a rule; writable: {', '.join(WRITABLE)}")
    if head in READABLE:
        raise RuleError(where, f"{path!r}: field {head!r} has no sub-fields (only attributes.NAME has)")
    names = (*allowed, "attributes")
    raise RuleError(where, f"unknown field {path!r}{suggest(head, names)}; fields: {', '.join(names)}.NAME")


def compile_field(path: str, where: Position | None = None) -> Getter:
    """`host` -> getter of ev.host; `attributes.a.b` -> ev.attributes['a']['b'] or None when absent.

    The severity getter returns the plain string ('major'), so results compare and hash as text.
    Getters hold no state: the rules of a set share one per path (a big set names few paths).
    """
    get = _GETTERS.get(path) if isinstance(path, str) else None
    if get is None:
        get = _compile_field(path, where)
        if len(_GETTERS) >= _GETTERS_KEPT:
            _GETTERS.clear()
        _GETTERS[path] = get
    return get


_GETTERS: dict[str, Getter] = {}
_GETTERS_KEPT = 10_000


def _compile_field(path: str, where: Position | None) -> Getter:
    parts = split_path(path, where)
    if parts[0] != "attributes":
        if parts[0] == "severity":
            return _severity_text
        return operator.attrgetter(parts[0])
    keys = parts[1:]
    if len(keys) == 1:
        key = keys[0]
        return lambda ev: ev.attributes.get(key)
    if len(keys) == 2:  # attributes.labels.severity and the like: the common depth, unrolled
        k1, k2 = keys

        def nested2(ev: Event) -> Any:
            value = ev.attributes.get(k1)
            return value.get(k2) if isinstance(value, dict) else None

        return nested2

    def nested(ev: Event) -> Any:
        value: Any = ev.attributes
        for k in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(k)
        return value

    return nested


# A member's text by table: `.value` is a Python-level property of Enum (CPython 3.11), read per
# event by every severity condition and template.
_SEVERITY_TEXT: dict[Severity, str] = {s: s.value for s in Severity}


def _severity_text(ev: Event) -> str:
    sev = ev.severity
    # only for a member: anything else raises as `.value` did
    return _SEVERITY_TEXT[sev] if sev.__class__ is Severity else sev.value


def compile_setter(path: str, where: Position | None = None) -> Setter:
    """A setter for a writable field; attributes.a.b creates the intermediate mappings it needs.

    Values for the text fields are converted with str(); severity must name a severity (otherwise the
    event keeps its severity and FieldError is raised for the caller to count).
    """
    parts = split_path(path, where, writable=True)
    head = parts[0]
    if head == "severity":

        def set_severity(ev: Event, value: Any) -> None:
            ev.severity = value if isinstance(value, Severity) else Severity.parse(value)

        return set_severity
    if head in TEXT_FIELDS:

        def set_text(ev: Event, value: Any) -> None:
            setattr(ev, head, value if isinstance(value, str) else ("" if value is None else str(value)))

        return set_text
    keys = parts[1:]
    last = keys[-1]
    inner = keys[:-1]

    def set_attribute(ev: Event, value: Any) -> None:
        target = ev.attributes
        for k in inner:
            nxt = target.get(k)
            if not isinstance(nxt, dict):
                nxt = {}
                target[k] = nxt
            target = nxt
        target[last] = value

    return set_attribute


__all__ = ["READABLE", "WRITABLE", "FieldError", "Getter", "Setter", "compile_field", "compile_setter"]
