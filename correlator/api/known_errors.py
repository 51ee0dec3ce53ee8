"""/api/v1/known-errors: match conditions (the rules' matcher language) and a workaround.

Reading needs the viewer role, writing and retiring admin. Conditions are compiled when posted:
invalid ones answer 400 with `field: match`. Recording one for a problem moves it to known_error.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from correlator.api.common import dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.api.problems import (
    CONFLICT,
    NOT_FOUND,
    PAGE_PARAMS,
    id_,
    page_schema,
    parse,
    run,
    service,
)
from correlator.api.record_fields import (
    actor,
    body_schema,
    created,
    invalid,
    log_entry,
    page,
    query_int,
    query_states,
    read_body,
    with_log,
)
from correlator.errors import FieldError
from correlator.problems.conditions import ConditionError
from correlator.problems.model import KnownErrorState

TAGS = ("problems",)
_TIME = {"type": "string", "format": "date-time", "nullable": True}
KNOWN_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "A known error: match conditions (rules' matcher language) and a workaround",
    "properties": {
        "id": {"type": "string", "example": "KE-000002"},
        "title": {"type": "string"},
        "match": {"type": "object"},
        "workaround": {"type": "string"},
        "problem_id": {"type": "string", "nullable": True},
        "state": {"type": "string", "enum": [s.value for s in KnownErrorState]},
        "matched": {"type": "integer"},
        **{k: _TIME for k in ("created_at", "updated_at")},
    },
}
ONE_KE = {"type": "object", "properties": {"known_error": KNOWN_ERROR}}
KE_ID = param("id", "path", "KE-000002 or 2")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/known-errors", list_known_errors)
    r.add_post("/api/v1/known-errors", create_known_error)
    r.add_get("/api/v1/known-errors/{id}", get_known_error)
    r.add_post("/api/v1/known-errors/{id}/retire", retire_known_error)


@operation(
    summary="List known errors, newest first",
    role="viewer",
    tags=TAGS,
    parameters=PAGE_PARAMS,
    responses={
        200: ("a page of known errors", page_schema("known_errors", KNOWN_ERROR)),
        400: ("invalid query", ERROR),
    },
)
async def list_known_errors(request: web.Request) -> web.Response:
    params = dict(request.query)
    try:
        states = query_states(params, tuple(s.value for s in KnownErrorState))
        limit = query_int(params, "limit", 50)
        cursor = query_int(params, "cursor", 0, 1, 1 << 62) if "cursor" in params else None
    except FieldError as e:
        return invalid(e)
    items = await service(request).query_known_errors(states, limit, cursor)
    return dumps_response(200, page(items, limit, "known_errors"))


CREATE_KE = {"title": "str", "match": "object", "workaround": "text", "problem_id": "ref"}


@operation(
    summary="Record a known error (moves its problem, if given, to known_error)",
    role="admin",
    tags=TAGS,
    request_body=body_schema(CREATE_KE, ("title", "match", "workaround")),
    responses={
        201: ("created", ONE_KE),
        400: ("invalid body or match conditions", ERROR),
        404: ("no such problem", ERROR),
        409: ("the problem is resolved", ERROR),
    },
)
async def create_known_error(request: web.Request) -> web.Response:
    try:
        fields = await read_body(request, CREATE_KE, ("title", "match", "workaround"))
        problem = fields.get("problem_id")
        problem_id = parse("PRB", problem, "problem_id") if problem else None
        ke = await service(request).create_known_error(
            actor(request), fields["title"], fields["match"], fields["workaround"], problem_id
        )
    except FieldError as e:
        return invalid(e)
    except ConditionError as e:
        return dumps_response(400, {"error": str(e), "field": "match"})
    return created("known_error", ke, "known-errors")


@operation(
    summary="One known error with its audit log",
    role="viewer",
    tags=TAGS,
    parameters=(KE_ID,),
    responses={
        200: (
            "the known error",
            with_log("known_error", KNOWN_ERROR),
        ),
        404: NOT_FOUND,
    },
)
async def get_known_error(request: web.Request) -> web.Response:
    ke, log = await service(request).get_known_error(id_(request, "KE"))
    return dumps_response(200, {"known_error": ke.to_api(), "log": [log_entry(e) for e in log]})


@operation(
    summary="Retire a known error: new incidents are no longer matched against it",
    role="admin",
    tags=TAGS,
    parameters=(KE_ID,),
    responses={200: ("retired", ONE_KE), 404: NOT_FOUND, 409: CONFLICT},
)
async def retire_known_error(request: web.Request) -> web.Response:
    return await run(service(request).retire_known_error(id_(request, "KE"), actor(request)), "known_error")
