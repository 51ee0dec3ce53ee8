"""The OpenAPI document describes every route the daemon serves, and is a valid OpenAPI 3 document."""

from __future__ import annotations

import re

import orjson
import pytest
from openapi_spec_validator import validate

from correlator.api.openapi import document, operation_of, routes, undocumented
from tests.unit.api.conftest import daemon_app as built_app
from tests.unit.api.route_roles import ROUTE_ROLES


@pytest.fixture
async def daemon_app(tmp_path):
    async with built_app(tmp_path) as app:
        yield app


async def test_every_route_is_documented(daemon_app):
    assert undocumented(daemon_app) == [], "add @operation(...) to these handlers (correlator/api/openapi.py)"
    doc = document(daemon_app)
    served = {(m.lower(), p) for m, p, _ in routes(daemon_app)}
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
    for must in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/incidents/{id}/ack"]:
        assert must in doc["paths"]
    assert set(doc["paths"]["/api/v1/events"]) == {"get", "post"}


async def test_document_is_valid_openapi_3(daemon_app):
    doc = orjson.loads(orjson.dumps(document(daemon_app)))
    validate(doc)


async def test_path_parameters_and_roles_are_declared(daemon_app):
    for method, path, handler in routes(daemon_app):
        op = operation_of(handler)
        assert op is not None
        # An open route (role None) is one only when the table says so (test_route_roles.py).
        assert (method, path) in ROUTE_ROLES, f"{method} {path}: add it to tests/unit/api/route_roles.py"
        role = ROUTE_ROLES[method, path]
        assert op.role == (None if role == "console" else role), (method, path)
        declared = {p["name"] for p in op.parameters if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert op.responses, (method, path)


def _resolve(node, doc):
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _resolve(doc["components"]["schemas"][name], doc)
        return {k: _resolve(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, doc) for v in node]
    return node


async def test_answers_match_the_documented_schemas(api):
    """Drive the API through its statuses; each answer's status and body must be the documented ones."""
    from openapi_schema_validator import OAS30Validator

    from correlator.api.incident_schemas import INCIDENT
    from tests.unit.api.conftest import bearer

    doc = document(api.server.app)
    admin = bearer("admin")
    calls = [
        ("get", "/healthz", "/healthz", None, {}),
        ("get", "/readyz", "/readyz", None, {}),
        ("get", "/api/v1/events", "/api/v1/events", None, admin),
        ("get", "/api/v1/events", "/api/v1/events?severity=huge", None, admin),
        ("post", "/api/v1/incidents", "/api/v1/incidents", {"title": "x", "key": "k"}, admin),
        ("post", "/api/v1/incidents", "/api/v1/incidents", {"title": "x", "key": "k"}, admin),
        ("post", "/api/v1/incidents", "/api/v1/incidents", {"title": 5}, admin),
        ("get", "/api/v1/incidents", "/api/v1/incidents", None, admin),
        ("get", "/api/v1/incidents", "/api/v1/incidents?limit=0", None, admin),
        ("get", "/api/v1/incidents/{id}", "/api/v1/incidents/1", None, admin),
        ("get", "/api/v1/incidents/{id}", "/api/v1/incidents/9", None, admin),
        ("patch", "/api/v1/incidents/{id}", "/api/v1/incidents/1", {"category": "power"}, admin),
        ("post", "/api/v1/incidents/{id}/ack", "/api/v1/incidents/1/ack", {}, admin),
        ("post", "/api/v1/incidents/{id}/ack", "/api/v1/incidents/1/ack", {}, admin),
        ("post", "/api/v1/incidents/{id}/comment", "/api/v1/incidents/1/comment", {}, admin),
        ("post", "/api/v1/incidents/{id}/resolve", "/api/v1/incidents/1/resolve", {}, admin),
        ("post", "/api/v1/incidents/{id}/close", "/api/v1/incidents/1/close", {}, admin),
        ("post", "/api/v1/incidents/{id}/close", "/api/v1/incidents/2/close", {}, admin),
        ("get", "/api/v1/incidents", "/api/v1/incidents", None, {}),
        ("get", "/api/v1/incidents", "/api/v1/incidents", None, bearer("viewer")),
        ("post", "/api/v1/incidents/{id}/reopen", "/api/v1/incidents/1/reopen", {}, bearer("operator")),
    ]
    seen = set()
    for method, template, url, body, headers in calls:
        r = await api.request(method.upper(), url, json=body, headers=headers)
        op = doc["paths"][template][method]
        assert str(r.status) in op["responses"], f"{method} {url} answered undocumented {r.status}"
        seen.add(r.status)
        schema = op["responses"][str(r.status)].get("content", {}).get("application/json", {}).get("schema")
        answer = await r.json()
        if schema is not None:
            OAS30Validator(_resolve(schema, doc)).validate(answer)
        if "incident" in answer:
            assert set(answer["incident"]) == set(INCIDENT["properties"]), "document every incident field"
    assert {200, 201, 400, 401, 403, 404, 409} <= seen
