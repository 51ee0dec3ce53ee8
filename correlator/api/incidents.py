"""/api/v1/incidents: list, show (with timeline), create, edit, and the lifecycle actions.

Handlers validate input and call IncidentService; the state machine answers 409 on an illegal
change, and the actor recorded in the audit is the API token's name (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from correlator.api.auth import ACTOR, ANONYMOUS
from correlator.api.common import STATE, dumps_response
from correlator.api.incident_schemas import INCIDENT, TIMELINE_ENTRY, bad, field_schema, read_fields
from correlator.api.openapi import ERROR, operation, param
from correlator.api.record_fields import created
from correlator.changes.model import parse_human_id as parse_change_id
from correlator.errors import FieldError, NotFound
from correlator.event import parse_time
from correlator.incidents.model import PRIORITIES, Status, parse_human_id
from correlator.incidents.service import IncidentService
from correlator.incidents.store import IncidentQuery
from correlator.problems.model import parse_id as parse_problem_id

MAX_LIMIT = 500
TAGS = ("incidents",)


ONE = {"type": "object", "properties": {"incident": INCIDENT}}
ID = param("id", "path", "INC-000123 or 123")

# Field kinds of request bodies: str (<= 256 chars), text (<= 16384), level (1..3), bool, ref (str or null).
CREATE_FIELDS = {
    "title": "str",
    "description": "text",
    "host": "str",
    "service": "str",
    "category": "str",
    "impact": "level",
    "urgency": "level",
    "assignment_group": "str",
    "assignee": "str",
    "major": "bool",
    "key": "ref",
}
EDIT_FIELDS = {
    **{k: v for k, v in CREATE_FIELDS.items() if k not in ("key", "assignment_group", "assignee")},
    "problem_id": "ref",
    "change_id": "ref",
}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/incidents", list_incidents)
    r.add_post("/api/v1/incidents", create_incident)
    r.add_get("/api/v1/incidents/{id}", get_incident)
    r.add_patch("/api/v1/incidents/{id}", edit_incident)
    for name, handler in ACTIONS.items():
        r.add_post(f"/api/v1/incidents/{{id}}/{name}", handler)


def _service(request: web.Request) -> IncidentService:
    svc = request.app[STATE].incidents
    if svc is None:
        raise web.HTTPServiceUnavailable(reason="incident management is not running")
    return svc


@operation(
    summary="List incidents, newest first",
    role="viewer",
    tags=TAGS,
    parameters=(
        param("status", "query", "comma-separated statuses, e.g. new,acknowledged"),
        param("priority", "query", "comma-separated priorities, e.g. P1,P2"),
        param("host", "query", "configuration item (host)"),
        param("service", "query", "service"),
        param("key", "query", "correlation key"),
        param("major", "query", "true or false", {"type": "boolean"}),
        param("since", "query", "opened at or after: ISO 8601 or epoch seconds"),
        param("limit", "query", f"page size, 1..{MAX_LIMIT} (default 50)", {"type": "integer"}),
        param("cursor", "query", "next_cursor of the previous page"),
    ),
    responses={
        200: (
            "a page of incidents",
            {
                "type": "object",
                "properties": {
                    "incidents": {"type": "array", "items": INCIDENT},
                    "next_cursor": {"type": "string", "nullable": True},
                },
            },
        ),
        400: ("invalid query parameter", ERROR),
    },
)
async def list_incidents(request: web.Request) -> web.Response:
    try:
        q = parse_query(dict(request.query))
    except FieldError as e:
        return dumps_response(400, {"error": str(e), "field": e.field})
    page = await _service(request).query(q)
    cursor = str(page.next_cursor) if page.next_cursor is not None else None
    return dumps_response(200, {"incidents": [i.to_api() for i in page.incidents], "next_cursor": cursor})


def parse_query(params: dict[str, str]) -> IncidentQuery:
    known = {"status", "priority", "host", "service", "key", "major", "since", "limit", "cursor"}
    for key in params:
        if key not in known:
            raise FieldError(key, f"unknown query parameter; known: {', '.join(sorted(known))}")
    statuses = csv_values(params, "status", tuple(s.value for s in Status))
    priorities = csv_values(params, "priority", PRIORITIES)
    major = None
    if "major" in params:
        if params["major"] not in ("true", "false"):
            raise FieldError("major", "must be true or false")
        major = params["major"] == "true"
    since = None
    if "since" in params:
        raw = params["since"]
        try:
            since = parse_time(float(raw), "since")
        except ValueError:
            since = parse_time(raw, "since")
    limit = _int(params, "limit", 50)
    if not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"must be between 1 and {MAX_LIMIT}")
    cursor = _int(params, "cursor", 0) if "cursor" in params else None
    return IncidentQuery(
        statuses,
        priorities,
        params.get("host"),
        params.get("service"),
        params.get("key"),
        major,
        since,
        limit,
        cursor,
    )


@operation(
    summary="One incident with its timeline (linked events, comments, audited changes)",
    role="viewer",
    tags=TAGS,
    parameters=(ID,),
    responses={
        200: (
            "the incident and its timeline, oldest entry first",
            {
                "type": "object",
                "properties": {
                    "incident": INCIDENT,
                    "timeline": {"type": "array", "items": TIMELINE_ENTRY},
                },
            },
        ),
        404: ("no such incident", ERROR),
    },
)
async def get_incident(request: web.Request) -> web.Response:
    inc, timeline = await _service(request).get(_id(request))
    return dumps_response(200, {"incident": inc.to_api(), "timeline": [e.to_api() for e in timeline]})


@operation(
    summary="Open an incident by hand",
    role="admin",
    tags=TAGS,
    request_body={
        "type": "object",
        "required": ["title"],
        "properties": {k: field_schema(v) for k, v in CREATE_FIELDS.items()},
        "additionalProperties": False,
    },
    responses={
        201: ("created", ONE),
        400: ("invalid body", ERROR),
        409: ("an active incident already has this correlation key", ERROR),
    },
)
async def create_incident(request: web.Request) -> web.Response:
    try:
        fields = await read_fields(request, CREATE_FIELDS, required=("title",))
        inc = await _service(request).create(_actor(request), fields)
    except FieldError as e:
        return _invalid(e)
    return created("incident", inc, "incidents")


@operation(
    summary="Edit fields (priority follows impact and urgency; links to a problem and a change)",
    role="admin",
    tags=TAGS,
    parameters=(ID,),
    request_body={
        "type": "object",
        "additionalProperties": False,
        "properties": {k: field_schema(v) for k, v in EDIT_FIELDS.items()},
    },
    responses={
        200: ("edited", ONE),
        400: ("invalid body, or problem_id/change_id naming no record", ERROR),
        404: ("no such incident", ERROR),
    },
)
async def edit_incident(request: web.Request) -> web.Response:
    try:
        fields = await read_fields(request, EDIT_FIELDS)
        await _check_links(request, fields)
    except FieldError as e:
        return _invalid(e)
    return await _act(request, "update", fields)


async def _check_links(request: web.Request, fields: dict[str, Any]) -> None:
    """A link names a record that exists; it is kept in its canonical form (PRB-000007, CHG-000012)."""
    state = request.app[STATE]
    problems, changes = state.problems, state.changes
    links: list[tuple[str, str, str, Callable[[str], int | None], Any]] = [
        (
            "problem_id",
            "problem",
            "PRB",
            lambda text: parse_problem_id("PRB", text),
            problems and problems.get_problem,
        ),
        ("change_id", "change", "CHG", parse_change_id, changes and changes.get),
    ]
    for key, kind, prefix, parse, get in links:
        text = fields.get(key)
        if text is None:  # absent, or null: unlink
            continue
        n = parse(text)
        if n is None:
            raise bad(key, f"expected {prefix}-000012 or 12, got {text!r}")
        if get is not None:  # without the service (tests of the incident API alone) nothing to check
            try:
                record, _ = await get(n)
            except NotFound:
                raise bad(key, f"no {kind} {text!r}") from None
            fields[key] = record.human_id


# Each action's body fields (kind per field) and the required ones, as the API checks them.
ACTION_FIELDS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}


def _action(
    name: str, role: str, summary: str, fields: dict[str, str], required: tuple[str, ...] = ()
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            args = check_action(
                name, await read_fields(request, fields, required, optional_body=not required)
            )
        except FieldError as e:
            return _invalid(e)
        return await _act(request, name, args)

    handler.__name__ = f"incident_{name}"
    ACTION_FIELDS[name] = (fields, required)
    return operation(
        summary=summary,
        role=role,
        tags=TAGS,
        parameters=(ID,),
        request_body={
            "type": "object",
            **({"required": list(required)} if required else {}),
            "properties": {k: field_schema(v) for k, v in fields.items()},
            "additionalProperties": False,
        },
        responses={
            200: ("the changed incident", ONE),
            400: ("invalid body", ERROR),
            404: ("no such incident", ERROR),
            409: ("not allowed in the incident's status (state machine)", ERROR),
        },
    )(handler)


_WORK_STATUSES = ("acknowledged", "in_progress", "on_hold")


def check_action(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """What an action's fields must satisfy beyond their kinds (the web console checks the same)."""
    if name == "status" and args["status"] not in _WORK_STATUSES:
        raise bad("status", f"must be one of {', '.join(_WORK_STATUSES)} (use resolve/close/reopen)")
    if name == "assign" and not args:
        raise bad("", "give 'group', 'assignee' or both")
    return args


ACTIONS = {
    "ack": _action("ack", "operator", "Acknowledge (new -> acknowledged)", {"note": "text"}),
    "status": _action(
        "status",
        "operator",
        "Set a working status: acknowledged, in_progress or on_hold",
        {"status": "str", "note": "text"},
        ("status",),
    ),
    "assign": _action(
        "assign", "operator", "Set the assignment group and/or assignee", {"group": "str", "assignee": "str"}
    ),
    "comment": _action("comment", "operator", "Add a comment to the timeline", {"text": "text"}, ("text",)),
    "resolve": _action(
        "resolve", "operator", "Resolve with a resolution code and notes", {"code": "str", "notes": "text"}
    ),
    "close": _action("close", "admin", "Close a resolved incident (final)", {"note": "text"}),
    "reopen": _action("reopen", "admin", "Reopen a resolved incident (back to new)", {"reason": "text"}),
}


async def _act(request: web.Request, action: str, args: dict[str, Any]) -> web.Response:
    inc = await _service(request).act(_id(request), action, _actor(request), args)
    return dumps_response(200, {"incident": inc.to_api()})


def _id(request: web.Request) -> int:
    n = parse_human_id(request.match_info["id"])
    if n is None:
        raise web.HTTPNotFound(reason=f"no incident {request.match_info['id']!r}: expected INC-000123 or 123")
    return n


def _actor(request: web.Request) -> str:
    actor: str = request.get(ACTOR, ANONYMOUS)
    return actor


def _invalid(e: FieldError) -> web.Response:
    return dumps_response(400, {"error": str(e), "field": e.field})


def csv_values(params: dict[str, str], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if key not in params:
        return ()
    values = tuple(v.strip() for v in params[key].split(",") if v.strip())
    for v in values:
        if v not in allowed:
            raise FieldError(key, f"must be among {', '.join(allowed)}, got {v!r}")
    return values


def _int(params: dict[str, str], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    # isascii: isdigit is also true for "²", which int() refuses; 18 digits fit the stores' integers.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise FieldError(key, f"must be a whole number below 10^18, got {raw[:40]!r}")
    return int(raw)
