"""The configurable webhook format: JSON paths in the source's config say where each event field is.

For anything without a built-in format. `items` points at the array of alerts in the body (by
default the body itself, an object or an array); `fields` etc. are compiled once by correlator.fieldmap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.webhook.formats import Converter, Result, check_keys, each
from correlator import jsonpath
from correlator.errors import ConfigError, FieldError
from correlator.fieldmap import GENERIC_FIELDS, FieldMap, parse_field_map

_KEYS = {
    "format",
    "token",
    "hmac_secret",
    "hmac_header",
    "items",
    "fields",
    "attributes",
    "severity_map",
    "defaults",
}


def make(raw: Mapping[str, Any], where: str) -> Converter:
    check_keys(raw, _KEYS, where)
    items: jsonpath.Path | None = None
    if raw.get("items") is not None:
        try:
            items = jsonpath.compile_path(raw["items"])
        except ValueError as e:
            raise ConfigError(f"'{where}.items': {e}") from None
    mapping = parse_field_map(raw, where, GENERIC_FIELDS)
    return lambda doc, source, received, body=None: convert(doc, source, received, items, mapping)


def convert(doc: Any, source: str, received: float, items: jsonpath.Path | None, mapping: FieldMap) -> Result:
    found = doc if items is None else jsonpath.get(doc, items)
    if found is jsonpath.MISSING:
        raise FieldError(
            jsonpath.render(items or ()), "not found in the body (the 'items' path of this source)"
        )
    batch = found if isinstance(found, list) else [found]

    def one(item: Any) -> Any:
        if not isinstance(item, dict):
            raise FieldError("", f"an item must be a JSON object, got {type(item).__name__}")
        return mapping.build(item, source, received)

    return each(batch, one)
