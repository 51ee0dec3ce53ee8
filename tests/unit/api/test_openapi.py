"""The OpenAPI document describes every route the daemon serves, and is a valid OpenAPI 3 document."""

from __future__ import annotations

import re

import orjson
import pytest
from openapi_spec_validator import validate

from correlator import daemon
from correlator.api.openapi import ROLES, document, operation_of, routes, undocumented
from correlator.config import load_config


@pytest.fixture
async def daemon_app(tmp_path):
    """The application exactly as `correlator run` assembles it (collectors' routes included)."""
    config = load_config(None, {"storage.data_dir": str(tmp_path / "var")})
    d = await daemon.build(config)
    yield d.app
    await d.incidents.close()
    await d.queue.close()
    await d.store.close()


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
        assert op.role in (None, "webhook", *ROLES), (method, path)
        declared = {p["name"] for p in op.parameters if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert op.responses, (method, path)
