"""The console's routes: sign-in, the pages, the incident actions, the static files.

Each action is a form POST checked in this order: a session (401), its CSRF token (403), the role the
API route of the same action needs (403), the fields as the API checks them (400); then the same
IncidentService call as the API, with the token's name as the actor.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from correlator import errors
from correlator.api import incidents as incidents_api
from correlator.api.auth import TokenAuth
from correlator.api.common import STATE, AppState
from correlator.api.incident_schemas import check_field
from correlator.api.openapi import ERROR, operation, operation_of, param
from correlator.console import views
from correlator.console.render import CSP, document, html, redirect
from correlator.console.session import REFUSED, Sessions, Who, clear_cookie, cookie_sid, new_sid, set_cookie
from correlator.errors import FieldError
from correlator.incidents.model import PRIORITIES, parse_human_id

SESSIONS = web.AppKey("console_sessions", Sessions)
STATIC = Path(__file__).parent / "static"
REFRESH_SECONDS = 5  # the live list and the wall fetch their rows this often
MAX_FORM_BYTES = 64 * 1024

Page = Callable[[web.Request, Who], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, auth: TokenAuth | None) -> None:
    app[SESSIONS] = Sessions(auth or TokenAuth())
    r = app.router
    r.add_get("/", home)
    r.add_get("/signin", signin_page)
    r.add_post("/signin", signin)
    r.add_post("/signout", signout)
    r.add_get("/incidents", page(incidents_page, "Incidents: the live list, filtered"))
    r.add_get("/incidents/rows", page(incident_rows, "Incidents: the list's rows, refreshed by the page"))
    r.add_get("/incidents/{id}", page(incident_page, "One incident: fields, events, timeline, actions", _ID))
    r.add_post("/incidents/{id}/{action}", incident_action)
    r.add_get("/changes", page(changes_page, "Change calendar: upcoming windows, recurring ones expanded"))
    r.add_get("/problems", page(problems_page, "Problems and known errors"))
    r.add_get("/services", page(services_page, "Services: availability against target"))
    r.add_get("/wall", page(wall_page, "Wall view of open incidents (dark, large type, refreshes itself)"))
    r.add_get("/wall/rows", page(wall_rows, "Wall view: its rows, refreshed by the page"))
    r.add_get("/static/{name}", static_file)


def add_document(
    app: web.Application,
    path: str,
    summary: str,
    produce: Callable[[web.Request], Awaitable[str]],
    csp: str = CSP,
) -> None:
    """One more console page at `path` showing a whole HTML document made elsewhere (a report):
    signed-in users of any role, the console's headers; a self-contained document with inline
    styles passes its own `csp`."""

    async def show(request: web.Request, who: Who) -> web.StreamResponse:
        return document(await produce(request), csp=csp)

    app.router.add_get(path, page(show, summary))


_TAGS = ("console",)
_SESSION = (
    "Web console page (HTML). Open to a console session (cookie from /signin), not to a bearer token;"
    " docs/console.md."
)
_ID = param("id", "path", "INC-000123 or 123")
_HTML_PAGE = {200: ("an HTML page", None), 303: ("no session: to /signin", None), 400: ("bad filter", None)}
_FORM = ("application/x-www-form-urlencoded",)


def _form_body(props: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["csrf"],
        "properties": {
            "csrf": {"type": "string"},
            **{k: {"type": "string", "description": v} for k, v in (props or {}).items()},
        },
    }


def page(
    handler: Page, summary: str, *params: dict[str, Any]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page for signed-in users (any role; everyone when the API is open). In open mode a visitor
    without a cookie gets one, so their forms have a CSRF token bound to something."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        sessions = request.app[SESSIONS]
        who = sessions.who(request)
        if who is None:
            REFUSED.labels("unsigned").inc()
            if request.path.endswith("/rows"):  # a live fragment whose session expired
                raise web.HTTPUnauthorized(reason="sign in again at /signin")
            return redirect("/signin?next=" + quote(request.path_qs, safe=""))
        fresh = None
        if not who.sid:
            fresh = new_sid()
            who = Who(who.name, who.role, fresh, False)
        try:
            resp = await handler(request, who)
        except FieldError as e:
            REFUSED.labels("invalid").inc()
            resp = _base(request, who, "error.html", 400, message=f"{e.field}: {e}", title="Bad request")
        if fresh is not None:
            set_cookie(request, resp, fresh)
        return resp

    wrapped.__name__ = handler.__name__
    return operation(
        summary=summary, tags=_TAGS, description=_SESSION, parameters=params, responses=_HTML_PAGE
    )(wrapped)


# --- sign-in -----------------------------------------------------------------------------------


@operation(summary="Console sign-in form", tags=_TAGS, responses={200: ("an HTML form", None)})
async def signin_page(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    if sessions.who(request) is not None and sessions.open:
        return redirect("/incidents")
    nonce = cookie_sid(request) or new_sid()
    resp = html(
        "signin.html",
        csrf=sessions.csrf(nonce),
        next=_next(request.query.get("next")),
        error="",
        who=None,
        nav="",
    )
    set_cookie(request, resp, nonce)
    return resp


@operation(
    summary="Console sign-in with an API token: sets the session cookie",
    tags=_TAGS,
    request_body=_form_body({"token": "an API token (http.tokens)", "next": "a path of this site to go to"}),
    request_types=_FORM,
    responses={
        303: ("signed in", None),
        401: ("unknown token", None),
        403: ("missing or wrong CSRF token", None),
    },
)
async def signin(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    form = await _form(request)
    nonce = cookie_sid(request) or ""
    if not sessions.csrf_ok(nonce, form.get("csrf")):
        return _refuse(request, "csrf", 403, "the sign-in form expired or came from another site")
    target = _next(form.get("next"))
    s = sessions.sign_in(str(form.get("token") or "").strip())
    if s is None:
        REFUSED.labels("signin").inc()
        resp = html(
            "signin.html",
            401,
            csrf=sessions.csrf(nonce),
            next=target,
            error="Unknown token.",
            who=None,
            nav="",
        )
        return resp
    resp = redirect(target)
    set_cookie(request, resp, s.sid, s.role)  # a new id at sign-in: a planted cookie gains nothing
    return resp


@operation(
    summary="Console sign-out: ends the session",
    tags=_TAGS,
    request_body=_form_body(),
    request_types=_FORM,
    responses={303: ("signed out", None), 403: ("missing or wrong CSRF token", None)},
)
async def signout(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    form = await _form(request)
    sid = cookie_sid(request) or ""
    if not sessions.csrf_ok(sid, form.get("csrf")):
        return _refuse(request, "csrf", 403, "missing or wrong CSRF token")
    sessions.sign_out(sid)
    resp = redirect("/signin")
    clear_cookie(request, resp)
    return resp


# --- pages -------------------------------------------------------------------------------------


async def incidents_page(request: web.Request, who: Who) -> web.StreamResponse:
    f = views.parse_filters(request.query)
    data = await views.incident_list(_state(request).incidents or _no("incident management"), f)
    return _base(
        request,
        who,
        "incidents.html",
        f=f,
        data=data,
        statuses=views.STATUS_CHOICES,
        priorities=PRIORITIES,
        refresh=REFRESH_SECONDS,
        nav="incidents",
    )


async def incident_rows(request: web.Request, who: Who) -> web.StreamResponse:
    f = views.parse_filters(request.query)
    data = await views.incident_list(_state(request).incidents or _no("incident management"), f)
    return html("_incident_rows.html", data=data, priorities=PRIORITIES)


async def incident_page(
    request: web.Request, who: Who, status: int = 200, error: str = ""
) -> web.StreamResponse:
    svc = _state(request).incidents or _no("incident management")
    n = parse_human_id(request.match_info["id"])
    if n is None:
        raise FieldError("id", "expected INC-000123 or 123")
    try:
        inc, timeline = await svc.get(n)
    except errors.NotFound as e:
        return _base(request, who, "error.html", 404, message=str(e), title="Not found")
    change = await views.linked_change(_state(request).changes, inc.change_id)
    v = views.incident_view(inc, timeline, change)
    allowed = {a for a in v.legal if who.may(_role_of(a))}
    return _base(request, who, "incident.html", status, v=v, allowed=allowed, error=error, nav="incidents")


async def changes_page(request: web.Request, who: Who) -> web.StreamResponse:
    svc = _state(request).changes or _no("change management")
    cal = await views.change_calendar(svc, svc.clock.now())
    return _base(request, who, "changes.html", cal=cal, days=views.CALENDAR_DAYS, nav="changes")


async def problems_page(request: web.Request, who: Who) -> web.StreamResponse:
    svc = _state(request).problems or _no("problem management")
    problems = await svc.query_problems((), views.LIST_LIMIT, None)
    known = await svc.query_known_errors((), views.LIST_LIMIT, None)
    return _base(request, who, "problems.html", problems=problems, known=known, nav="problems")


async def services_page(request: web.Request, who: Who) -> web.StreamResponse:
    clock = (_state(request).incidents or _no("incident management")).clock
    figures = views.service_figures(clock.now())
    return _base(request, who, "services.html", figures=figures, nav="services")


async def wall_page(request: web.Request, who: Who) -> web.StreamResponse:
    data = await views.incident_list(_state(request).incidents or _no("incident management"), views.Filters())
    return html("wall.html", data=data, priorities=PRIORITIES, refresh=REFRESH_SECONDS)


async def wall_rows(request: web.Request, who: Who) -> web.StreamResponse:
    data = await views.incident_list(_state(request).incidents or _no("incident management"), views.Filters())
    return html("_wall_rows.html", data=data, priorities=PRIORITIES)


# --- actions -----------------------------------------------------------------------------------


@operation(
    summary="Console action on an incident (ack, status, assign, comment, resolve, close, reopen)",
    tags=_TAGS,
    description=_SESSION + " The role each action needs is that of the API route of the same name.",
    parameters=(_ID, param("action", "path", "ack, status, assign, comment, resolve, close or reopen")),
    request_body=_form_body(
        dict.fromkeys(("note", "status", "group", "assignee", "text", "code", "notes", "reason"), "")
    ),
    request_types=_FORM,
    responses={
        303: ("done: to the incident page", None),
        400: ("invalid field", None),
        401: ("no session", ERROR),
        403: ("missing or wrong CSRF token, or the role is too low", None),
        404: ("no such incident or action", ERROR),
        409: ("not allowed in the incident's status", None),
    },
)
async def incident_action(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    action = request.match_info["action"]
    if action not in incidents_api.ACTIONS:
        raise web.HTTPNotFound(reason=f"no incident action {action!r}")
    who = sessions.who(request)
    if who is None:
        REFUSED.labels("unsigned").inc()
        raise web.HTTPUnauthorized(reason="sign in at /signin first")
    form = await _form(request)
    if not sessions.csrf_ok(who.sid, form.pop("csrf", None)):
        return _refuse(request, "csrf", 403, "missing or wrong CSRF token")
    needed = _role_of(action)
    if not who.may(needed):
        return _refuse(request, "forbidden", 403, f"{who.name} has role {who.role}; {action} needs {needed}")
    n = parse_human_id(request.match_info["id"])
    if n is None:
        raise web.HTTPNotFound(reason="expected INC-000123 or 123")
    svc = _state(request).incidents or _no("incident management")
    try:
        args = _action_args(action, form)
        await svc.act(n, action, who.name, args)
    except FieldError as e:
        REFUSED.labels("invalid").inc()
        return await incident_page(request, who, 400, f"{action}: {e.field}: {e}" if e.field else str(e))
    except errors.IllegalTransition as e:
        return await incident_page(request, who, 409, str(e))
    return redirect(f"/incidents/{request.match_info['id']}#timeline")


def _action_args(action: str, form: dict[str, Any]) -> dict[str, Any]:
    """The form's fields checked as the API checks a JSON body; an empty optional field is absent."""
    kinds, required = incidents_api.ACTION_FIELDS[action]
    args: dict[str, Any] = {}
    for key, value in form.items():
        kind = kinds.get(key)
        if kind is None:
            raise FieldError(key, f"unknown field; known: {', '.join(kinds)}")
        if value != "":
            args[key] = check_field(key, kind, value)
    for key in required:
        if not args.get(key):
            raise FieldError(key, "is required")
    return incidents_api.check_action(action, args)


def _role_of(action: str) -> str:
    op = operation_of(incidents_api.ACTIONS[action])
    assert op is not None and op.role is not None
    return op.role


_STATIC_TYPES = {"console.css": "text/css", "console.js": "text/javascript"}


@operation(
    summary="The console's stylesheet and script",
    tags=_TAGS,
    parameters=(param("name", "path", ", ".join(_STATIC_TYPES)),),
    responses={200: ("the file", None), 404: ("no such file", ERROR)},
)
async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    kind = _STATIC_TYPES.get(name)  # a fixed list: no path from the request reaches the file system
    if kind is None:
        raise web.HTTPNotFound(reason=f"no static file {name!r}")
    resp = web.Response(body=_static(name), content_type=kind, charset="utf-8")
    resp.headers.update({"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
    return resp


@functools.cache
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()  # two small files, read once


# --- helpers -----------------------------------------------------------------------------------


def _base(request: web.Request, who: Who, template: str, status: int = 200, **ctx: Any) -> web.Response:
    ctx.setdefault("nav", "")
    ctx.setdefault("title", "")
    return html(template, status, who=who, csrf=request.app[SESSIONS].csrf(who.sid), **ctx)


def _refuse(request: web.Request, reason: str, status: int, message: str) -> web.Response:
    REFUSED.labels(reason).inc()
    return html("error.html", status, message=message, title="Refused", who=None, nav="", csrf="")


async def _form(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPUnsupportedMediaType(
            reason="send the console's form (application/x-www-form-urlencoded)"
        )
    # read() returns what has arrived so far: read on until the end, or past the limit (a chunked
    # body has no Content-Length to refuse it by).
    body = b""
    while len(body) <= MAX_FORM_BYTES:
        piece = await request.content.read(MAX_FORM_BYTES + 1 - len(body))
        if not piece:
            break
        body += piece
    if len(body) > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=len(body))
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as e:
        raise web.HTTPBadRequest(reason="the form is not valid UTF-8 url-encoded fields") from e
    return dict(pairs)


def _next(value: object) -> str:
    """Only a path of this site: never an open redirect to another host."""
    # Browsers drop tabs and newlines from a URL ("/\t/evil" is "//evil"), and a control
    # character cannot go into the Location header: printable ASCII only.
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return "/incidents"


@operation(summary="The web console: to /incidents", tags=_TAGS, responses={303: ("to /incidents", None)})
async def home(request: web.Request) -> web.StreamResponse:
    return redirect("/incidents")


def _state(request: web.Request) -> AppState:
    return request.app[STATE]


def _no(what: str) -> Any:
    raise web.HTTPServiceUnavailable(reason=f"{what} is not running")
