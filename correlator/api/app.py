"""Builds the aiohttp application: health, readiness, Prometheus metrics, and the API routes.

Collectors add their own ingest routes to the same application before it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics import Counter

from correlator import console, door, errors
from correlator.api import annotations as annotations_api
from correlator.api import changes as changes_api
from correlator.api import dead_letters as dead_letters_api
from correlator.api import events as events_api
from correlator.api import incidents as incidents_api
from correlator.api import known_errors as known_errors_api
from correlator.api import problems as problems_api
from correlator.api import report as report_api
from correlator.api.auth import TokenAuth, auth_middleware
from correlator.api.badhttp import refuse_body
from correlator.api.common import STATE, AppState, dumps_response, push_back
from correlator.api.connections import CLOSED, LIMITS, BodyTimeout, ConnectionLimits
from correlator.api.openapi import openapi_json, operation
from correlator.config import HttpConfig
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNHANDLED = Counter(
    "correlator_http_unhandled_errors_total",
    "Requests answered 500 because a handler raised unexpectedly (a bug: see the log)",
)
STORE_LOST = Counter(
    "correlator_http_store_unavailable_total",
    "Requests answered 503 because the database connection was lost under them",
)
REFUSED = Counter(
    "correlator_http_refused_total",
    "Requests the API answered with a 4xx (a bad field or body, no such record or route, a state that "
    "refuses the action, a role missing...), by route pattern and status; ingest's own per-event "
    "refusals are in correlator_events_rejected_total",
    ["route", "status"],
)
_limited = RateLimitedLog(log)


def make_app(state: AppState, max_body_bytes: int, limits: ConnectionLimits | None = None) -> web.Application:
    auth = auth_middleware(state.auth or TokenAuth())
    limits = limits or ConnectionLimits(
        HttpConfig.max_connections, HttpConfig.body_timeout, HttpConfig.idle_timeout
    )
    # The body deadline goes first: its 408 must close the connection whatever the route does.
    app = web.Application(
        client_max_size=max_body_bytes, middlewares=[limits.middleware(), json_errors, auth]
    )
    app[LIMITS] = limits
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/events", events_api.list_events)
    dead_letters_api.add_routes(app)
    if state.incidents is not None:
        incidents_api.add_routes(app)
    if state.changes is not None:
        changes_api.add_routes(app)
    if state.problems is not None:
        problems_api.add_routes(app)
        known_errors_api.add_routes(app)
    if state.incidents is not None:
        console.add_routes(app, state.auth)
        report_api.add_routes(app)
        annotations_api.add_routes(app)
    return app


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is JSON with an `error` field, including aiohttp's own 404/405/413.

    A record that does not exist (404) or refuses the action in its state (409), an action whose
    event the daemon cannot take now (503 + Retry-After), and a body that is not valid HTTP (400),
    are answered here, once for every API; a client that closed its connection mid-request is only
    counted. Anything else a handler raises is the last line: logged with its traceback, counted, and
    answered as a JSON 500 that tells the client nothing internal.
    """
    try:
        for key, value in request.query.items():  # a filter with a NUL would reach the database
            door.check_text(f"query {key[:40]!r}", value)
        resp = await handler(request)
        if 400 <= resp.status < 500:  # a handler's own refusal (most answer a bad field themselves)
            _count_refused(request, resp.status)
        return resp
    except errors.FieldError as e:  # door.Refused included: a request the door turns away
        return _refused(request, 400, {"error": str(e), "field": e.field})
    except errors.NotFound as e:
        return _refused(request, 404, {"error": str(e)})
    except (errors.IllegalTransition, errors.Conflict) as e:
        return _refused(request, 409, {"error": str(e)})
    except (errors.QueueFull, errors.ShuttingDown) as e:
        return push_back(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status < 500:
            resp = _refused(request, e.status, {"error": e.reason})
        else:
            resp = dumps_response(e.status, {"error": e.reason})
        for h in ("Allow", "Retry-After", "WWW-Authenticate"):
            if h in e.headers:
                resp.headers[h] = e.headers[h]
        return resp
    except RequestPayloadError as e:  # what reading a body raises when its framing or encoding is bad
        return refuse_body(request, e)
    except BodyTimeout:
        raise  # the connection limits answer it (408) and close the connection
    except Exception as e:
        if isinstance(e, ConnectionError) and (request.transport is None or request.transport.is_closing()):
            # The client went away mid-request (aiohttp sets ConnectionResetError on its body): not a
            # bug, and nobody is left to read an answer.
            CLOSED.labels("client_gone").inc()
            log.debug("%s %s: the client closed the connection", request.method, request.rel_url.path[:200])
            resp = dumps_response(400, {"error": "connection lost before the request was complete"})
            resp.force_close()
            return resp
        if errors.store_connection_lost(e):  # the pool reconnects: the client retries
            STORE_LOST.inc()
            _limited.warning(
                "store-lost",
                "%s %s: database connection lost: %s",
                request.method,
                request.rel_url.path[:200],
                e,
            )
            resp = dumps_response(503, {"error": "the store is unavailable (connection lost), retry later"})
            resp.headers["Retry-After"] = "1"
            return resp
        UNHANDLED.inc()
        log.exception("%s %s: unhandled error", request.method, request.rel_url.path[:200])
        return dumps_response(500, {"error": "internal error; the daemon logged the details"})


def _refused(request: web.Request, status: int, doc: dict[str, object]) -> web.Response:
    _count_refused(request, status)
    return dumps_response(status, doc)


# Set on a request an HTTP worker passes through: the daemon answers, and counts, its refusal.
PASSED_ON = "correlator.passed_on"


def _count_refused(request: web.Request, status: int) -> None:
    """Counted by the route's pattern (`/api/v1/incidents/{id}`, not the path: a bounded set of
    labels), or `unmatched` for a path no route serves."""
    if request.get(PASSED_ON):
        return
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    REFUSED.labels(route, str(status)).inc()


_HEALTH = {"type": "object", "properties": {"status": {"type": "string"}}}
_READY = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}


@operation(summary="Liveness: the process answers", tags=("meta",), responses={200: ("alive", _HEALTH)})
async def healthz(request: web.Request) -> web.Response:
    return dumps_response(200, {"status": "ok"})


@operation(
    summary="Readiness: stores, journal and collectors healthy, pipeline not stalled",
    tags=("meta",),
    responses={200: ("ready", _READY), 503: ("not ready; checks says what failed", _READY)},
)
async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks = {"store": await state.store.ping()}
    if state.queue is not None:  # disk full or I/O errors: ingest answers 503 until a commit works
        checks["journal"] = state.queue.healthy()
    if state.progress is not None:
        checks["pipeline"] = not state.progress.stalled()
    if state.incidents is not None:
        checks["incidents"] = await state.incidents.store.ping()
    if state.changes is not None:
        checks["records"] = await state.changes.store.ping()
    for c in state.collectors:
        checks[f"collector:{c.name}"] = c.healthy()
    ok = all(checks.values())
    return dumps_response(200 if ok else 503, {"status": "ready" if ok else "not ready", "checks": checks})


_prometheus = make_aiohttp_handler()


@operation(
    summary="Prometheus metrics (text exposition format)",
    tags=("meta",),
    responses={200: ("metrics in the Prometheus text format", None)},
)
async def metrics_handler(request: web.Request) -> web.StreamResponse:
    return await _prometheus(request)
