"""Builds the aiohttp application: health, readiness, Prometheus metrics, and the API routes.

Collectors add their own ingest routes to the same application before it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from correlator.api import events as events_api
from correlator.api.common import STATE, AppState, dumps_response

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(state: AppState, max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler())
    app.router.add_get("/api/v1/events", events_api.list_events)
    return app


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is JSON with an `error` field, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        resp = dumps_response(e.status, {"error": e.reason})
        for h in ("Allow", "Retry-After", "WWW-Authenticate"):
            if h in e.headers:
                resp.headers[h] = e.headers[h]
        return resp


async def healthz(request: web.Request) -> web.Response:
    return dumps_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks = {"store": await state.store.ping()}
    for c in state.collectors:
        checks[f"collector:{c.name}"] = c.healthy()
    ok = all(checks.values())
    return dumps_response(200 if ok else 503, {"status": "ready" if ok else "not ready", "checks": checks})
