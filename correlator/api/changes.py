"""/api/v1/changes: list, show (with audit log), create, and the state machine's actions.

Approving and cancelling need the admin role, starting, completing and failing the operator role
(the implementer). A start, completion or failure puts its event on the ingest queue once saved;
when the queue is full the action answers 503 with Retry-After first and the change keeps its state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    query_states,
    read_body,
    with_log,
)
from correlator.changes.model import ACTIONS, POLICIES, RISKS, State, parse_human_id
from correlator.changes.service import ChangeService
from correlator.errors import FieldError

TAGS = ("changes",)
_TIME = {"type": "string", "format": "date-time", "nullable": True}
CHANGE: dict[str, Any] = {
    "type": "object",
    "description": "A change record (docs/changes.md); times are ISO 8601 UTC",
    "properties": {
        "id": {"type": "string", "example": "CHG-000012"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "state": {"type": "string", "enum": [s.value for s in State]},
        "risk": {"type": "string", "enum": list(RISKS)},
        "implementer": {"type": "string"},
        "cis": {"type": "array", "items": {"type": "string"}},
        "services": {"type": "array", "items": {"type": "string"}},
        "policy": {"type": "string", "nullable": True, "enum": [*POLICIES, None]},
        "dependents_policy": {"type": "string", "nullable": True, "enum": [*POLICIES, None]},
        "calendar": {
            "type": "string",
            "nullable": True,
            "description": "window@start of a calendar occurrence",
        },
        "withdrawn": {
            "type": "boolean",
            "description": "cancelled by a calendar reload because its window was removed or changed",
        },
        "incidents": {"type": "array", "items": {"type": "string"}, "description": "suspected caused"},
        **{k: _TIME for k in ("start", "end", "created_at", "updated_at", "started_at", "finished_at")},
    },
}
ONE = {"type": "object", "properties": {"change": CHANGE}}
ID = param("id", "path", "CHG-000012 or 12")
CREATE_FIELDS: dict[str, Any] = {
    "title": "str",
    "description": "text",
    "start": "time",
    "end": "time",
    "cis": "names",
    "services": "names",
    "risk": RISKS,
    "implementer": "str",
    "policy": POLICIES,
    "dependents_policy": POLICIES,
}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/changes", list_changes)
    r.add_post("/api/v1/changes", create_change)
    r.add_get("/api/v1/changes/{id}", get_change)
    for name, handler in HANDLERS.items():
        r.add_post(f"/api/v1/changes/{{id}}/{name}", handler)


def _service(request: web.Request) -> ChangeService:
    svc = request.app[STATE].changes
    if svc is None:
        raise web.HTTPServiceUnavailable(reason="change management is not running")
    return svc


@operation(
    summary="List changes, newest first",
    role="viewer",
    tags=TAGS,
    parameters=(
        param("state", "query", "comma-separated states, e.g. approved,in_progress"),
        param("limit", "query", "page size, 1..500 (default 50)", {"type": "integer"}),
        param("cursor", "query", "next_cursor of the previous page"),
    ),
    responses={
        200: (
            "a page of changes",
            {
                "type": "object",
                "properties": {
                    "changes": {"type": "array", "items": CHANGE},
                    "next_cursor": {"type": "string", "nullable": True},
                },
            },
        ),
        400: ("invalid query parameter", ERROR),
    },
)
async def list_changes(request: web.Request) -> web.Response:
    params = dict(request.query)
    try:
        states = query_states(params, tuple(s.value for s in State))
        limit = query_int(params, "limit", 50)
        cursor = query_int(params, "cursor", 0, 1, 1 << 62) if "cursor" in params else None
    except FieldError as e:
        return invalid(e)
    return dumps_response(200, page(await _service(request).query(states, limit, cursor), limit, "changes"))


@operation(
    summary="Request a change (state requested)",
    role="admin",
    tags=TAGS,
    request_body=body_schema(CREATE_FIELDS, ("title", "start", "end")),
    responses={201: ("created", ONE), 400: ("invalid body", ERROR)},
)
async def create_change(request: web.Request) -> web.Response:
    try:
        fields = await read_body(request, CREATE_FIELDS, ("title", "start", "end"))
        if fields["end"] <= fields["start"]:
            raise FieldError("end", "must be after start")
        if not fields.get("cis") and not fields.get("services"):
            raise FieldError("cis", "give the affected CIs ('cis'), services ('services') or both")
    except FieldError as e:
        return invalid(e)
    c = await _service(request).create(actor(request), fields)
    return created("change", c, "changes")


@operation(
    summary="One change with its audit log",
    role="viewer",
    tags=TAGS,
    parameters=(ID,),
    responses={
        200: (
            "the change and its log, oldest entry first",
            with_log("change", CHANGE),
        ),
        404: ("no such change", ERROR),
    },
)
async def get_change(request: web.Request) -> web.Response:
    c, log = await _service(request).get(_id(request))
    return dumps_response(200, {"change": c.to_api(), "log": [log_entry(e) for e in log]})


def _action(name: str, role: str, summary: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            args = await read_body(request, {"note": "text"})
        except FieldError as e:
            return invalid(e)
        # A full queue: the JSON-error middleware answers 503 + Retry-After, nothing saved
        c = await _service(request).act(_id(request), name, actor(request), args.get("note", ""))
        return dumps_response(200, {"change": c.to_api()})

    handler.__name__ = f"change_{name}"
    return operation(
        summary=summary,
        role=role,
        tags=TAGS,
        parameters=(ID,),
        request_body=body_schema({"note": "text"}),
        responses={
            200: ("the changed change", ONE),
            400: ("invalid body", ERROR),
            404: ("no such change", ERROR),
            409: ("not allowed in the change's state (state machine)", ERROR),
            503: ("the ingest queue is full (nothing saved): retry after Retry-After", ERROR),
        },
    )(handler)


_SUMMARIES = {
    "approve": ("admin", "Approve a requested change (its window then covers events)"),
    "start": ("operator", "Start an approved change (emits change.started)"),
    "complete": ("operator", "Complete a change in progress (emits change.completed)"),
    "fail": (
        "operator",
        "Mark a change failed: in progress, or completed with linked incidents (emits change.failed)",
    ),
    "cancel": ("admin", "Cancel a requested or approved change"),
}
assert set(_SUMMARIES) == set(ACTIONS)
HANDLERS = {name: _action(name, role, summary) for name, (role, summary) in _SUMMARIES.items()}


def _id(request: web.Request) -> int:
    n = parse_human_id(request.match_info["id"])
    if n is None:
        raise web.HTTPNotFound(reason=f"no change {request.match_info['id']!r}: expected CHG-000012 or 12")
    return n
