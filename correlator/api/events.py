"""GET /api/v1/events: stored events, newest first, filtered, with cursor paging."""

from __future__ import annotations

from aiohttp import web

from correlator.api.common import STATE, dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.errors import FieldError
from correlator.event import Severity, parse_time
from correlator.store import EventQuery

MAX_LIMIT = 1000


def parse_query(params: dict[str, str]) -> EventQuery:
    known = {"host", "type", "severity", "source", "fingerprint", "since", "until", "limit", "cursor"}
    for key, value in params.items():
        if key not in known:
            raise FieldError(key[:64], f"unknown query parameter; known: {', '.join(sorted(known))}")
        if "\x00" in value:  # PostgreSQL refuses NUL in text; no stored event can hold one
            raise FieldError(key, "contains U+0000 (NUL)")
    severities: tuple[str, ...] = ()
    if "severity" in params:
        severities = tuple(Severity.parse(s.strip()).value for s in params["severity"].split(","))
    since = _time(params, "since")
    until = _time(params, "until")
    limit = _int(params, "limit", 100)
    if not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"must be between 1 and {MAX_LIMIT}")
    cursor = _int(params, "cursor", None) if "cursor" in params else None
    return EventQuery(
        host=params.get("host"),
        type=params.get("type"),
        severities=severities,
        source=params.get("source"),
        fingerprint=params.get("fingerprint"),
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@operation(
    summary="Stored events, newest first, filtered, with cursor paging",
    role="viewer",
    tags=("events",),
    parameters=(
        param("host", "query", "exact host"),
        param("type", "query", "exact event type"),
        param("severity", "query", "comma-separated severities"),
        param("source", "query", "collector source, e.g. webhook:generic"),
        param("fingerprint", "query", "de-duplication key"),
        param("since", "query", "event time at or after: ISO 8601 or epoch seconds"),
        param("until", "query", "event time before: ISO 8601 or epoch seconds"),
        param("limit", "query", f"page size, 1..{MAX_LIMIT} (default 100)", {"type": "integer"}),
        param("cursor", "query", "next_cursor of the previous page"),
    ),
    responses={
        200: (
            "a page of events",
            {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "next_cursor": {"type": "string", "nullable": True},
                },
            },
        ),
        400: ("invalid query parameter", ERROR),
    },
)
async def list_events(request: web.Request) -> web.Response:
    try:
        q = parse_query(dict(request.query))
    except FieldError as e:
        return dumps_response(400, {"error": str(e), "field": e.field})
    page = await request.app[STATE].store.query(q)
    return dumps_response(
        200,
        {
            "events": [e.to_api() for e in page.events],
            "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
        },
    )


def _time(params: dict[str, str], key: str) -> float | None:
    if key not in params:
        return None
    raw = params[key]
    try:
        return parse_time(float(raw), key)
    except ValueError:
        return parse_time(raw, key)


def _int(params: dict[str, str], key: str, default: int | None) -> int:
    raw = params.get(key)
    if raw is None:
        assert default is not None
        return default
    # isascii: str.isdigit is also true for digits int() refuses ("²"); the length keeps the
    # number inside the stores' 64-bit integers.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise FieldError(key, f"must be a whole number below 10^18, got {raw[:40]!r}")
    return int(raw)
