"""The OpenAPI 3 document of the daemon, built from the routes actually registered on the app.

Each handler carries its own description and required role (`@operation(...)`), wherever its
module lives (core API, incidents, a collector's ingest route); `document(app)` walks the router,
so a route cannot be served without being described (tests/unit/api/test_openapi.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web

from correlator import __version__

H = TypeVar("H", bound=Callable[..., Any])

# Roles, weakest first; `None` means open to anyone, "webhook" means the handler checks its own token.
ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Operation:
    summary: str
    role: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    parameters: tuple[dict[str, Any], ...] = ()
    request_body: dict[str, Any] | None = None  # JSON schema of the body
    request_types: tuple[str, ...] = ("application/json",)
    responses: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)


def operation(**kwargs: Any) -> Callable[[H], H]:
    """Describe a handler for the OpenAPI document and the auth middleware."""
    op = Operation(**kwargs)

    def mark(handler: H) -> H:
        handler.__openapi__ = op  # type: ignore[attr-defined]
        return handler

    return mark


def operation_of(handler: object) -> Operation | None:
    op = getattr(handler, "__openapi__", None)
    return op if isinstance(op, Operation) else None


def routes(app: web.Application) -> list[tuple[str, str, object]]:
    """(METHOD, path template, handler) of every served route except the automatic HEADs."""
    out: list[tuple[str, str, object]] = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        out.append((route.method, route.resource.canonical, route.handler))
    return out


def undocumented(app: web.Application) -> list[str]:
    return [f"{m} {p}" for m, p, h in routes(app) if operation_of(h) is None]


def param(name: str, where: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


ERROR = {"$ref": "#/components/schemas/Error"}


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in routes(app):
        op = operation_of(handler)
        if op is None:
            continue
        paths.setdefault(path, {})[method.lower()] = _operation(op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "correlator",
            "version": __version__,
            "description": "NOC event-correlation daemon: ingest, events, incidents. See docs/api.md.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API token from http.tokens; its role must reach x-required-role",
                },
                "webhookToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ingest token of the webhook collector (collectors.webhook.token)",
                },
            },
            "schemas": SCHEMAS,
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags)}
    if op.description:
        doc["description"] = op.description
    if op.parameters:
        doc["parameters"] = list(op.parameters)
    if op.request_body is not None:
        doc["requestBody"] = {
            "required": bool(op.request_body.get("required")) or "oneOf" in op.request_body,
            "content": {t: {"schema": op.request_body} for t in op.request_types},
        }
    responses: dict[str, Any] = {}
    for status, (text, schema) in sorted(op.responses.items()):
        r: dict[str, Any] = {"description": text}
        if schema is not None:
            r["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = r
    if op.role in ROLES:
        doc["security"] = [{"apiToken": []}]
        doc["x-required-role"] = op.role
        responses.setdefault("401", {"description": "missing or unknown API token", "content": _json(ERROR)})
        responses.setdefault(
            "403", {"description": f"the token's role is below {op.role}", "content": _json(ERROR)}
        )
    elif op.role == "webhook":
        doc["security"] = [{"webhookToken": []}, {}]
    else:
        doc["security"] = []
    doc["responses"] = responses
    return doc


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "field": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "ingest: each refused item of a batch (docs/api.md, Errors)",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "reason": {
                            "type": "string",
                            "enum": [
                                "invalid",
                                "too_deep",
                                "too_large",
                                "bad_text",
                                "time_out_of_range",
                                "malformed_json",
                            ],
                        },
                    },
                },
            },
            "accepted": {
                "type": "array",
                "items": {"type": "string"},
                "description": "ingest: ids of the batch's items that were accepted despite the errors",
            },
        },
    },
    "Event": {
        "type": "object",
        "description": "A normalised event (docs/events.md); times are ISO 8601 UTC",
        "properties": {
            "id": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "received": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
            "host": {"type": "string"},
            "type": {"type": "string"},
            "severity": {
                "type": "string",
                "enum": ["critical", "major", "minor", "warning", "info", "clear"],
            },
            "resource": {"type": "string"},
            "message": {"type": "string"},
            "attributes": {"type": "object"},
            "fingerprint": {"type": "string"},
            "count": {"type": "integer"},
            "last_seen": {"type": "string", "format": "date-time"},
        },
    },
}


@operation(
    summary="This document (OpenAPI 3)", tags=("meta",), responses={200: ("the document", {"type": "object"})}
)
async def openapi_json(request: web.Request) -> web.Response:
    # not api.common.dumps_response: common needs auth, which needs this module (ROLES, operation_of)
    return web.Response(body=orjson.dumps(document(request.app)), content_type="application/json")
