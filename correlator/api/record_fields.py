"""Request bodies and queries shared by /api/v1/changes, /problems and /known-errors.

Extends the incident API's field kinds (str, text, ref, bool) with times, name lists, objects and
choices, and gives each kind its JSON schema so the OpenAPI document and validation agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from correlator import door
from correlator.api.auth import ACTOR, ANONYMOUS
from correlator.api.common import dumps_response
from correlator.api.incident_schemas import bad, check_field, field_schema, read_fields
from correlator.config import parse_duration
from correlator.errors import FieldError
from correlator.event import iso, parse_time

MAX_LIMIT = 500
MAX_NAMES = 1000
LOG_ENTRY = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "description": "token name, system, calendar, anonymous"},
        "action": {"type": "string", "example": "state"},
        "detail": {"type": "object"},
    },
}


def with_log(name: str, record_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of one record with its audit log: {name: record, "log": [entry, ...]}."""
    return {
        "type": "object",
        "properties": {name: record_schema, "log": {"type": "array", "items": LOG_ENTRY}},
    }


def log_entry(e: Any) -> dict[str, Any]:
    return {"seq": e.seq, "at": iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}


def created(name: str, record: Any, collection: str) -> web.Response:
    """201 with the new record and its Location (/api/v1/<collection>/<human id>)."""
    resp = dumps_response(201, {name: record.to_api()})
    resp.headers["Location"] = f"/api/v1/{collection}/{record.human_id}"
    return resp


def schema(kind: str | tuple[str, ...]) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"type": "string", "enum": list(kind)}
    if kind == "time":
        return {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 (UTC if naive) or epoch seconds",
        }
    if kind == "names":
        return {"type": "array", "items": {"type": "string", "maxLength": 256}, "maxItems": MAX_NAMES}
    if kind == "object":
        return {"type": "object"}
    return field_schema(kind)


def body_schema(fields: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        **({"required": list(required)} if required else {}),
        "properties": {k: schema(v) for k, v in fields.items()},
        "additionalProperties": False,
    }


async def read_body(
    request: web.Request, fields: dict[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """read_fields with the record kinds; an empty body is `{}` when nothing is required."""
    return await read_fields(request, fields, required, optional_body=not required, check=_check)


def _check(key: str, kind: str | tuple[str, ...], value: Any) -> Any:
    if isinstance(kind, tuple):
        if value not in kind:
            raise bad(key, f"must be one of {', '.join(kind)}, got {value!r}")
        return value
    if kind == "time":
        return parse_time(value, key)
    if kind == "names":
        if (
            not isinstance(value, list)
            or len(value) > MAX_NAMES
            or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)
        ):
            raise bad(key, f"must be a list of at most {MAX_NAMES} non-empty names")
        for v in value:
            door.check_text(key, v)
        return list(dict.fromkeys(value))
    if kind == "object":
        if not isinstance(value, dict):
            raise bad(key, "must be a JSON object")
        door.check_document(key, value)  # bounded depth, no NUL: it is stored as JSON
        return value
    return check_field(key, kind, value)


def query_states(
    params: dict[str, str], allowed: tuple[str, ...], extra: tuple[str, ...] = ()
) -> tuple[str, ...]:
    known = {"state", "limit", "cursor", *extra}
    for key in params:
        if key not in known:
            raise FieldError(key, f"unknown query parameter; known: {', '.join(sorted(known))}")
    if "state" not in params:
        return ()
    values = tuple(v.strip() for v in params["state"].split(",") if v.strip())
    for v in values:
        if v not in allowed:
            raise FieldError("state", f"must be among {', '.join(allowed)}, got {v!r}")
    return values


def query_int(params: Mapping[str, str], key: str, default: int, low: int = 1, high: int = MAX_LIMIT) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    # int() refuses more than 4,300 digits with a ValueError (a 500): the length is checked first
    if not (len(raw) <= 19 and raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise FieldError(key, f"must be a whole number between {low} and {high}, got {raw[:40]!r}")
    return int(raw)


def query_since(params: dict[str, str], now: float, default: float) -> float:
    """`since`: an ISO 8601 time, epoch seconds, or a duration back from now ('7d')."""
    raw = params.get("since")
    if raw is None:
        return now - default
    try:
        return now - parse_duration(raw)
    except ValueError:
        pass
    try:
        return parse_time(float(raw), "since")
    except ValueError:
        return parse_time(raw, "since")


def actor(request: web.Request) -> str:
    name: str = request.get(ACTOR, ANONYMOUS)
    return name


def invalid(e: FieldError) -> web.Response:
    return dumps_response(400, {"error": str(e), "field": e.field})


def page(items: list[Any], limit: int, name: str) -> dict[str, Any]:
    """Newest first; next_cursor is the last id when the page is full."""
    cursor = str(items[-1].id) if len(items) == limit and items else None
    return {name: [i.to_api() for i in items], "next_cursor": cursor}
