"""What every webhook format module provides, and the helpers they share.

A format turns one parsed request body into per-item results: `(index, Event)` for a good item,
`(index, FieldError)` for a bad one, so a batch is accepted item by item like the generic format.
A FieldError raised from `convert` itself rejects the whole body (it is not the expected shape).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from correlator import door
from correlator.errors import ConfigError, FieldError
from correlator.event import Event, Severity, parse_time

Result = list[tuple[int, Event | FieldError]]


class Converter(Protocol):
    """convert(document, event_source, received, body) -> per-item results.

    `body`: the JSON text the document was parsed from (None for a form). A format whose events
    take their texts and attributes only from the document may judge it with `door.plain_json`
    and pass the verdict to `each`; the others ignore it."""

    def __call__(self, doc: Any, source: str, received: float, body: bytes | None = None) -> Result: ...


Factory = Callable[[Mapping[str, Any], str], Converter]
"""make(format_options, config_key_for_errors) -> converter; raises ConfigError."""


def stable_id(*parts: str) -> str:
    """An event id derived from what identifies a notification, so a re-sent one is stored once."""
    h = _STABLE_ID.copy()  # a copy of a prepared hash: cheaper than making one with its options
    h.update("\x1f".join(parts).encode())
    return h.hexdigest()


_STABLE_ID = hashlib.blake2b(digest_size=16)


def each(
    items: list[Any],
    one: Callable[[Any], Event],
    plain: bool = False,
    plain_item: Callable[[Any], bool] | None = None,
) -> Result:
    """Convert each item and check it at the door (correlator/door.py): one bad item is its own 400.

    `plain` (see `Converter`) only where every text and attribute of the events `one` builds is a
    value of the parsed body, or a slice or the text of one: then the body's limits are theirs.
    `plain_item`: the same verdict for one item's event, asked of an item `one` converted."""
    out: Result = []
    for i, item in enumerate(items):
        try:
            ev = one(item)
            door.check(ev, plain=plain or (plain_item is not None and plain_item(item)))
        except FieldError as e:
            out.append((i, e))
        else:
            out.append((i, ev))
    return out


def text(d: Mapping[str, Any], key: str, required: bool = False, field: str | None = None) -> str:
    """A string field (numbers accepted and turned into text); FieldError names `field` or `key`."""
    v = d.get(key)
    if type(v) is str and v:  # the common case, before the slower union isinstance below
        return v
    if v is None or v == "":
        if required:
            raise FieldError(field or key, "is required and must be a non-empty string")
        return ""
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise FieldError(field or key, f"must be a string, got {type(v).__name__}")
    return str(v)


def timestamp(value: Any, field: str) -> float:
    """A time sent as epoch seconds (digits, the only form a form body has) or anything parse_time reads."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # int() refuses more than 4,300 digits with a ValueError (a 500); 20 are past any epoch anyway
        if len(digits) > 20:
            raise FieldError(field, f"epoch seconds out of range: {value[:40]!r}")
        return parse_time(int(digits), field)
    return parse_time(value, field)


def severity_map_option(raw: object, where: str, base: Mapping[str, Severity]) -> dict[str, Severity]:
    """The built-in table `base`, extended or overridden by the source's `severity_map`."""
    table = dict(base)
    if raw is None:
        return table
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}.severity_map': expected a mapping of source value to severity")
    for k, v in raw.items():
        try:
            table[str(k).lower()] = Severity.parse(v)
        except FieldError as e:
            raise ConfigError(f"'{where}.severity_map.{k}': {e.message}") from None
    return table


def check_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"'{where}.{key}': unknown key for this format; known: {', '.join(sorted(known))}"
            )
