"""The generic JSON event format: one object, an array, or NDJSON, chosen by Content-Type.

A batch is not all-or-nothing: valid items are accepted (durably) even when others are invalid;
the 400 answer lists each invalid item's index and field and the ids that were accepted, so a
client resends only what failed. A full queue refuses the whole request with 503 + Retry-After.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from correlator import door, metrics
from correlator.api.common import push_back
from correlator.api.openapi import ERROR, operation
from correlator.collector import Emit
from correlator.errors import FieldError, QueueFull, ShuttingDown
from correlator.event import Event, event_from_dict
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

SOURCE = "webhook:generic"
_JSON = {"application/json", "text/json"}
_NDJSON = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}


def json_error(status: int, error: str, retry_after: int | None = None, **extra: Any) -> web.Response:
    resp = web.Response(
        status=status, body=orjson.dumps({"error": error, **extra}), content_type="application/json"
    )
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def reject(source: str, reason: str, status: int, error: str, **extra: Any) -> web.Response:
    metrics.REJECTED_BY(source, reason).inc()
    _ratelog.warning(reason, "%s: rejected request (%s): %s", source, reason, error)
    return json_error(status, error, **extra)


def check_bearer(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    # aiohttp decodes header bytes that are not UTF-8 as surrogates: encode them back, never raise.
    sent = value.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, token.encode())


async def read_body(request: web.Request, source: str) -> bytes | web.Response:
    """The request body, or the 413 answer when it is above the limit."""
    limit = request.app._client_max_size
    if request.content_length is not None and request.content_length > limit:
        return reject(source, "too_large", 413, f"body larger than the limit of {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return reject(source, "too_large", 413, f"body larger than the limit of {limit} bytes")
    except ConnectionResetError:  # the sender went away mid-body: nothing of it was accepted
        return reject(source, "client_gone", 400, "connection lost before the body was complete")


def refuse_if_full(retry_after: float | None, source: str) -> web.Response | None:
    """503 before reading a body the queue has no room for: parsing it would only burn the CPU
    that the pipeline needs to drain the queue."""
    if retry_after is None:
        return None
    metrics.REJECTED_BY(source, QueueFull.reason).inc()
    return json_error(503, QueueFull.answer, retry_after=max(1, math.ceil(retry_after)))


async def accept(emit: Emit, events: list[Event], source: str) -> web.Response | None:
    """Emit durably; None on success, or the 503 answer when the daemon pushes back."""
    try:
        await emit(events, source)
    except (QueueFull, ShuttingDown) as e:
        return push_back(e)
    return None


def count_invalid(source: str, errors: list[dict[str, Any]]) -> None:
    """Count refused items by reason (a bounded set: correlator/door.py)."""
    by_reason: dict[str, int] = {}
    for e in errors:
        by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
    for reason, n in by_reason.items():
        metrics.REJECTED_BY(source, reason).inc(n)


class GenericEventsHandler:
    def __init__(self, emit: Emit, retry_after: Callable[[], float | None], token: str | None) -> None:
        self._emit = emit
        self._retry_after = retry_after
        self._token = token

    @operation(
        summary="Ingest events in the generic format: one object, an array, or NDJSON",
        role="webhook",
        tags=("ingest",),
        description="Valid items are accepted durably even when others are invalid (docs/events.md).",
        request_body={
            "oneOf": [
                {"$ref": "#/components/schemas/Event"},
                {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            ]
        },
        request_types=("application/json", "application/x-ndjson"),
        responses={
            202: ("accepted durably", {"type": "object"}),
            400: ("malformed body or invalid items (each listed by index and field)", ERROR),
            401: ("missing or wrong ingest token", ERROR),
            413: ("body over http.max_body_bytes", ERROR),
            415: ("unsupported Content-Type", ERROR),
            503: (
                "queue full, journal unable to write (storage unavailable) or shutting down; see Retry-After",
                ERROR,
            ),
        },
    )
    async def handle(self, request: web.Request) -> web.Response:
        if not check_bearer(request, self._token):
            metrics.REJECTED_BY(SOURCE, "unauthorized").inc()
            resp = json_error(401, "missing or wrong bearer token")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="correlator"'
            return resp
        ctype = request.content_type
        if ctype not in _JSON and ctype not in _NDJSON:
            return reject(
                SOURCE,
                "unsupported_media_type",
                415,
                f"Content-Type must be application/json or application/x-ndjson, got {ctype!r}",
            )
        full = refuse_if_full(self._retry_after(), SOURCE)
        if full is not None:
            return full
        body = await read_body(request, SOURCE)
        if isinstance(body, web.Response):
            return body
        received = time.time()
        items: list[Any]
        # Whether each item's text keeps the door's text and document limits (door.plain_json):
        # judged once on a JSON body (true of the body, true of every item in it), per line of NDJSON.
        plain: list[bool] | itertools.repeat[bool]
        parse_errors: list[dict[str, Any]] = []
        if ctype in _JSON:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                return reject(SOURCE, "malformed_json", 400, f"malformed JSON: {e}")
            items = doc if isinstance(doc, list) else [doc]
            plain = itertools.repeat(door.plain_json(body))
        else:
            lines = body.splitlines()
            try:  # the common case, every line one JSON document, without the per-line checks
                items = [orjson.loads(line) for line in lines]
            except orjson.JSONDecodeError:
                items = _ndjson_items(lines, parse_errors)
            plain = list(map(door.plain_json, lines))
        events: list[Event] = []
        errors = parse_errors
        for i, (item, plain_text) in enumerate(zip(items, plain, strict=False)):
            if item is _BLANK:
                continue
            try:
                ev = event_from_dict(item, SOURCE, received)
                door.check(ev, typed=True, plain=plain_text)  # event_from_dict checked the fields' types
            except FieldError as e:
                errors.append({"index": i, "field": e.field, "message": e.message, "reason": e.reason})
            else:
                events.append(ev)
        if not events and not errors:
            return reject(SOURCE, "empty", 400, "no events in the request body")
        if events:
            pushed_back = await accept(self._emit, events, SOURCE)
            if pushed_back is not None:
                return pushed_back
        ids = [e.id for e in events]
        if errors:
            errors.sort(key=lambda x: x["index"])
            count_invalid(SOURCE, errors)
            first = errors[0]
            _ratelog.warning(
                "invalid",
                "%s: %d invalid events, first at index %d: %s: %s",
                SOURCE,
                len(errors),
                first["index"],
                first["field"],
                first["message"],
            )
            return json_error(400, f"{len(errors)} invalid event(s)", errors=errors, accepted=ids)
        return web.Response(
            status=202, body=orjson.dumps({"accepted": len(ids), "ids": ids}), content_type="application/json"
        )


_BLANK = object()


def _ndjson_items(lines: list[bytes], parse_errors: list[dict[str, Any]]) -> list[Any]:
    """Each line parsed on its own: blank lines skipped, malformed ones reported by index."""
    items: list[Any] = []
    for n, line in enumerate(lines):
        if not line.strip():
            items.append(_BLANK)
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as e:
            items.append(_BLANK)
            parse_errors.append(
                {"index": n, "field": "", "message": f"malformed JSON: {e}", "reason": "malformed_json"}
            )
    return items
