"""/api/v1/dead-letters: what the store or the journal could not take (correlator/deadletter.py).

Viewers read them (the same data as stored events); admins delete one, or retry it: the event is
put back on the ingest queue and its dead letter removed (if it fails again it comes back here).
"""

from __future__ import annotations

import json

from aiohttp import web

from correlator import door, metrics
from correlator.api.common import STATE, AppState, dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.api.record_fields import query_int
from correlator.deadletter import REASONS, Claim, DeadLetterBusy
from correlator.errors import FieldError, NotFound

MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # the store's integer key
SOURCE = "dead_letters"  # the `source` label of a retried event's ingest metrics
TAGS = ("dead letters",)

DEAD_LETTER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time", "description": "when it was set aside (UTC)"},
        "reason": {"type": "string", "enum": list(REASONS)},
        "source": {"type": "string", "description": "the collector source of the event ('' if unknown)"},
        "event_id": {"type": "string"},
        "error": {"type": "string", "description": "what the store or the journal answered"},
        "raw": {"type": "string", "description": "the event as JSON text, cut at 256 KiB"},
    },
}
DL_ID = param("id", "path", "dead letter id (a number)")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/dead-letters", list_dead_letters)
    r.add_get("/api/v1/dead-letters/{id}", get_dead_letter)
    r.add_delete("/api/v1/dead-letters/{id}", delete_dead_letter)
    r.add_post("/api/v1/dead-letters/{id}/retry", retry_dead_letter)


@operation(
    summary="Dead letters, newest first: events the store or the journal could not take",
    role="viewer",
    tags=TAGS,
    parameters=(
        param("reason", "query", f"one of {', '.join(REASONS)}"),
        param("limit", "query", f"page size, 1..{MAX_LIMIT} (default 100)", {"type": "integer"}),
        param("cursor", "query", "next_cursor of the previous page"),
    ),
    responses={
        200: (
            "a page of dead letters",
            {
                "type": "object",
                "properties": {
                    "dead_letters": {"type": "array", "items": DEAD_LETTER},
                    "next_cursor": {"type": "string", "nullable": True},
                },
            },
        ),
        400: ("invalid query parameter", ERROR),
    },
)
async def list_dead_letters(request: web.Request) -> web.Response:
    q = dict(request.query)
    unknown = set(q) - {"reason", "limit", "cursor"}
    if unknown:
        name = sorted(unknown)[0]
        raise FieldError(name, "unknown query parameter; known: cursor, limit, reason")
    reason = q.get("reason")
    if reason is not None and reason not in REASONS:
        raise FieldError("reason", f"must be one of {', '.join(REASONS)}")
    limit = query_int(q, "limit", 100, high=MAX_LIMIT)
    cursor = query_int(q, "cursor", 0, low=0, high=MAX_ID) if "cursor" in q else None
    page = await request.app[STATE].store.dead_letters(limit, cursor, reason)
    return dumps_response(
        200,
        {
            "dead_letters": [d.to_api() for d in page.items],
            "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
        },
    )


@operation(
    summary="One dead letter",
    role="viewer",
    tags=TAGS,
    parameters=(DL_ID,),
    responses={200: ("the dead letter", DEAD_LETTER), 404: ("no such dead letter", ERROR)},
)
async def get_dead_letter(request: web.Request) -> web.Response:
    d = await request.app[STATE].store.get_dead_letter(_id(request))
    if d is None:
        raise NotFound(f"no dead letter {request.match_info['id']}")
    return dumps_response(200, d.to_api())


@operation(
    summary="Delete a dead letter (the event is given up)",
    role="admin",
    tags=TAGS,
    parameters=(DL_ID,),
    responses={
        200: ("deleted", {"type": "object"}),
        404: ("no such dead letter", ERROR),
        409: ("a retry of it is in progress", ERROR),
    },
)
async def delete_dead_letter(request: web.Request) -> web.Response:
    id_ = _id(request)
    try:
        deleted = await request.app[STATE].store.delete_dead_letter(id_)
    except DeadLetterBusy:
        return _busy(id_)
    if not deleted:
        raise NotFound(f"no dead letter {id_}")
    return dumps_response(200, {"deleted": id_})


@operation(
    summary="Retry a dead letter: put its event back on the ingest queue and delete it",
    role="admin",
    tags=TAGS,
    parameters=(DL_ID,),
    responses={
        202: ("queued again", {"type": "object"}),
        404: ("no such dead letter", ERROR),
        409: (
            "its raw text is not an event, the door still refuses it (field, reason), or another"
            " retry of it is in progress",
            ERROR,
        ),
        503: ("the queue is full or the journal cannot write; Retry-After says when to try", ERROR),
    },
)
async def retry_dead_letter(request: web.Request) -> web.Response:
    state = request.app[STATE]
    id_ = _id(request)
    try:
        # Claimed from reading to deleting: a second retry of the same dead letter meanwhile (a
        # double click, two admins, two daemons on one database) is a 409, so the event is put back once.
        async with state.store.claim_dead_letter(id_) as claim:
            return await _retry(state, id_, claim)
    except DeadLetterBusy:
        return _busy(id_)


def _busy(id_: int) -> web.Response:
    return dumps_response(409, {"error": f"dead letter {id_} is being retried by another request"})


async def _retry(state: AppState, id_: int, claim: Claim) -> web.Response:
    d = claim.letter
    if d is None:
        raise NotFound(f"no dead letter {id_}")
    try:
        doc = json.loads(d.raw)  # the standard library: raw may escape lone surrogates
    except Exception as e:  # cut or repr-encoded: only deleting it helps
        return dumps_response(409, {"error": f"dead letter {id_} cannot be retried: {type(e).__name__}"})
    try:
        # The door, as at ingest: what it refuses would only fail again behind it (or worse, reach a
        # stage). The time policy counts from the event's own receive time, as it did then.
        ev = door.from_wire(doc)
        door.check(ev)
    except door.Refused as e:
        metrics.EVENTS_REJECTED.labels(SOURCE, e.reason).inc()
        return dumps_response(
            409,
            {
                "error": f"dead letter {id_} cannot be retried: refused at the door: {e}",
                "field": e.field,
                "reason": e.reason,
            },
        )
    if state.ingest is None:
        return dumps_response(409, {"error": "this daemon has no ingest queue to retry into"})
    # An event the store has already is not queued again: an earlier retry put it back and then
    # could not delete its dead letter (the database was lost), or it was stored in the meantime.
    if not await state.store.known([ev.id]):
        await state.ingest.emit([ev], SOURCE)  # pushed back: 503 + Retry-After (the error middleware)
    await claim.delete()
    return dumps_response(202, {"retried": id_, "event_id": ev.id})


def _id(request: web.Request) -> int:
    try:
        return query_int(request.match_info, "id", 0, high=MAX_ID)
    except FieldError:  # a path that names no dead letter
        raise NotFound(f"no dead letter {request.match_info['id'][:64]!r}") from None
