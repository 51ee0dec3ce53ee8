"""/api/v1/problems: records, the recurrence trend, the problem lifecycle (known errors: known_errors.py).

Reading needs the viewer role, linking an incident the operator role; opening and resolving
problems need admin. The helpers at the bottom are shared with known_errors.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from correlator.api.common import STATE, dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.api.record_fields import (
    actor,
    body_schema,
    created,
    invalid,
    log_entry,
    page,
    query_int,
    query_since,
    query_states,
    read_body,
    with_log,
)
from correlator.errors import FieldError
from correlator.event import iso
from correlator.incidents.model import parse_human_id as parse_incident_id
from correlator.problems.model import ProblemState, parse_id
from correlator.problems.service import ProblemService

TAGS = ("problems",)
_TIME = {"type": "string", "format": "date-time", "nullable": True}
SIGNATURE = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "rule": {"type": "string"}, "host": {"type": "string"}},
}
PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "A problem (docs/problems.md)",
    "properties": {
        "id": {"type": "string", "example": "PRB-000003"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "state": {"type": "string", "enum": [s.value for s in ProblemState]},
        "signature": {**SIGNATURE, "nullable": True},
        "incidents": {"type": "array", "items": {"type": "string"}},
        "known_error_id": {"type": "string", "nullable": True},
        "root_cause": {"type": "string"},
        **{k: _TIME for k in ("opened_at", "resolved_at", "updated_at")},
    },
}
ONE_P = {"type": "object", "properties": {"problem": PROBLEM}}
PAGE_PARAMS = (
    param("state", "query", "comma-separated states"),
    param("limit", "query", "page size, 1..500 (default 50)", {"type": "integer"}),
    param("cursor", "query", "next_cursor of the previous page"),
)
P_ID = param("id", "path", "PRB-000003 or 3")
NOT_FOUND = ("no such record", ERROR)
CONFLICT = ("not allowed in the record's state", ERROR)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/problems", list_problems)
    r.add_post("/api/v1/problems", create_problem)
    r.add_get("/api/v1/problems/trend", trend)  # before {id}
    r.add_get("/api/v1/problems/{id}", get_problem)
    r.add_post("/api/v1/problems/{id}/link", link_incident)
    r.add_post("/api/v1/problems/{id}/resolve", resolve_problem)


def service(request: web.Request) -> ProblemService:
    svc = request.app[STATE].problems
    if svc is None:
        raise web.HTTPServiceUnavailable(reason="problem management is not running")
    return svc


def page_schema(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            name: {"type": "array", "items": item},
            "next_cursor": {"type": "string", "nullable": True},
        },
    }


@operation(
    summary="List problems, newest first",
    role="viewer",
    tags=TAGS,
    parameters=PAGE_PARAMS,
    responses={200: ("a page of problems", page_schema("problems", PROBLEM)), 400: ("invalid query", ERROR)},
)
async def list_problems(request: web.Request) -> web.Response:
    params = dict(request.query)
    try:
        states = query_states(params, tuple(s.value for s in ProblemState))
        limit = query_int(params, "limit", 50)
        cursor = query_int(params, "cursor", 0, 1, 1 << 62) if "cursor" in params else None
    except FieldError as e:
        return invalid(e)
    items = await service(request).query_problems(states, limit, cursor)
    return dumps_response(200, page(items, limit, "problems"))


@operation(
    summary="Top recurring incident signatures (correlation key, rule, CI)",
    role="viewer",
    tags=TAGS,
    parameters=(
        param(
            "since",
            "query",
            "a duration back from now ('7d', default: problems.recurrence_window), ISO 8601 or epoch",
        ),
        param("limit", "query", "how many signatures, 1..500 (default 10)", {"type": "integer"}),
    ),
    responses={
        200: (
            "signatures by number of incident (re)openings, most first",
            {
                "type": "object",
                "properties": {
                    "since": {"type": "string", "format": "date-time"},
                    "signatures": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "signature": SIGNATURE,
                                "count": {"type": "integer"},
                                "last_at": {"type": "string", "format": "date-time"},
                                "problem_id": {"type": "string", "nullable": True},
                            },
                        },
                    },
                },
            },
        ),
        400: ("invalid query", ERROR),
    },
)
async def trend(request: web.Request) -> web.Response:
    svc = service(request)
    params = dict(request.query)
    try:
        for key in params:
            if key not in ("since", "limit"):
                raise FieldError(key, "unknown query parameter; known: limit, since")
        since = query_since(params, svc.clock.now(), svc.settings.recurrence_window)
        limit = query_int(params, "limit", 10)
    except FieldError as e:
        return invalid(e)
    rows = await svc.trend(since, limit)
    for r in rows:
        r["last_at"] = iso(r["last_at"])
    return dumps_response(200, {"since": iso(since), "signatures": rows})


CREATE_P = {"title": "str", "description": "text", "incidents": "names"}


@operation(
    summary="Open a problem by hand, optionally linking incidents",
    role="admin",
    tags=TAGS,
    request_body=body_schema(CREATE_P, ("title",)),
    responses={201: ("created", ONE_P), 400: ("invalid body", ERROR)},
)
async def create_problem(request: web.Request) -> web.Response:
    try:
        fields = await read_body(request, CREATE_P, ("title",))
        ids = [_incident_id(i) for i in fields.get("incidents", [])]
    except FieldError as e:
        return invalid(e)
    p = await service(request).create_problem(
        actor(request), fields["title"], fields.get("description", ""), ids
    )
    return created("problem", p, "problems")


@operation(
    summary="One problem with its audit log",
    role="viewer",
    tags=TAGS,
    parameters=(P_ID,),
    responses={
        200: (
            "the problem",
            with_log("problem", PROBLEM),
        ),
        404: NOT_FOUND,
    },
)
async def get_problem(request: web.Request) -> web.Response:
    p, log = await service(request).get_problem(id_(request, "PRB"))
    return dumps_response(200, {"problem": p.to_api(), "log": [log_entry(e) for e in log]})


@operation(
    summary="Link an incident to a problem",
    role="operator",
    tags=TAGS,
    parameters=(P_ID,),
    request_body=body_schema({"incident": "str"}, ("incident",)),
    responses={200: ("linked", ONE_P), 400: ("invalid body", ERROR), 404: NOT_FOUND, 409: CONFLICT},
)
async def link_incident(request: web.Request) -> web.Response:
    try:
        fields = await read_body(request, {"incident": "str"}, ("incident",))
        incident_id = _incident_id(fields["incident"])
    except FieldError as e:
        return invalid(e)
    return await run(
        service(request).link_incident(id_(request, "PRB"), incident_id, actor(request)), "problem"
    )


RESOLVE = {"root_cause": "text", "resolve_incidents": "bool"}


@operation(
    summary="Resolve a problem; retires its known errors and, with resolve_incidents, resolves its incidents",
    role="admin",
    tags=TAGS,
    parameters=(P_ID,),
    request_body=body_schema(RESOLVE),
    responses={
        200: (
            "resolved",
            {
                "type": "object",
                "properties": {
                    "problem": PROBLEM,
                    "resolved_incidents": {"type": "array", "items": {"type": "string"}},
                },
            },
        ),
        400: ("invalid body", ERROR),
        404: NOT_FOUND,
        409: CONFLICT,
    },
)
async def resolve_problem(request: web.Request) -> web.Response:
    try:
        fields = await read_body(request, RESOLVE)
    except FieldError as e:
        return invalid(e)
    p, resolved = await service(request).resolve(
        id_(request, "PRB"),
        actor(request),
        fields.get("root_cause", ""),
        fields.get("resolve_incidents", False),
    )
    return dumps_response(200, {"problem": p.to_api(), "resolved_incidents": resolved})


async def run(call: Any, name: str) -> web.Response:
    record = await call
    return dumps_response(200, {name: record.to_api()})


def parse(prefix: str, text: str, field: str) -> int:
    n = parse_id(prefix, text)
    if n is None:
        raise FieldError(field, f"expected {prefix}-000012 or 12, got {text!r}")
    return n


def _incident_id(text: str) -> int:
    n = parse_incident_id(text)
    if n is None:
        raise FieldError("incidents", f"expected INC-000123 or 123, got {text!r}")
    return n


def id_(request: web.Request, prefix: str) -> int:
    n = parse_id(prefix, request.match_info["id"])
    if n is None:
        raise web.HTTPNotFound(
            reason=f"no record {request.match_info['id']!r}: expected {prefix}-000012 or 12"
        )
    return n
