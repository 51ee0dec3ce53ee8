"""Every auth case: no token, unknown token, role too low, role enough; open routes; no tokens at all."""

from __future__ import annotations

import pytest

from correlator.api.auth import parse_tokens
from correlator.errors import ConfigError
from tests.unit.api.conftest import bearer

ROLES = ["viewer", "operator", "admin"]

# (method, path, body, weakest role allowed)
PROTECTED = [
    ("GET", "/api/v1/events", None, "viewer"),
    ("GET", "/api/v1/incidents", None, "viewer"),
    ("GET", "/api/v1/incidents/INC-000001", None, "viewer"),
    ("POST", "/api/v1/incidents/1/ack", {}, "operator"),
    ("POST", "/api/v1/incidents/1/status", {"status": "in_progress"}, "operator"),
    ("POST", "/api/v1/incidents/1/assign", {"group": "noc"}, "operator"),
    ("POST", "/api/v1/incidents/1/comment", {"text": "looking"}, "operator"),
    ("POST", "/api/v1/incidents/1/resolve", {"code": "fixed"}, "operator"),
    ("POST", "/api/v1/incidents", {"title": "by hand"}, "admin"),
    ("PATCH", "/api/v1/incidents/1", {"service": "core"}, "admin"),
    ("POST", "/api/v1/incidents/1/close", {}, "admin"),
    ("POST", "/api/v1/incidents/1/reopen", {}, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "needed"), PROTECTED)
async def test_route_roles(api, method, path, body, needed):
    await api.svc.create("setup", {"title": "x"})
    r = await api.request(method, path, json=body)
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing API token" in (await r.json())["error"]
    r = await api.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    assert r.status == 401 and "unknown API token" in (await r.json())["error"]
    r = await api.request(method, path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status == 401
    for role in ROLES:
        r = await api.request(method, path, json=body, headers=bearer(role))
        if ROLES.index(role) < ROLES.index(needed):
            assert r.status == 403, (role, await r.text())
            assert f"has role {role}; this needs {needed}" in (await r.json())["error"]
        else:
            assert r.status not in (401, 403), (role, await r.text())


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"])
async def test_open_routes_need_no_token(api, path):
    r = await api.get(path)
    assert r.status == 200


async def test_no_tokens_configured_leaves_the_api_open(open_api):
    r = await open_api.post("/api/v1/incidents", json={"title": "by hand"})
    assert r.status == 201
    assert (await open_api.get("/api/v1/events")).status == 200
    r = await open_api.post("/api/v1/incidents/1/ack", json={})
    doc = await (await open_api.get("/api/v1/incidents/1")).json()
    assert [e["actor"] for e in doc["timeline"]] == ["anonymous", "anonymous"]


async def test_actor_in_audit_is_the_token_name(api):
    r = await api.post("/api/v1/incidents", json={"title": "fan failure"}, headers=bearer("admin"))
    assert r.status == 201
    await api.post("/api/v1/incidents/1/ack", json={"note": "mine"}, headers=bearer("operator"))
    doc = await (await api.get("/api/v1/incidents/1", headers=bearer("viewer"))).json()
    assert [(e["actor"], e["action"]) for e in doc["timeline"]] == [
        ("admin-token", "open"),
        ("operator-token", "ack"),
    ]
    assert doc["timeline"][1]["detail"]["note"] == "mine"


def test_token_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"'http.tokens.bob.role': expected one of viewer, operator, admin"):
        parse_tokens({"bob": {"role": "root", "sha256": "0" * 64}})
    with pytest.raises(ConfigError, match="expected 64 hex digits"):
        parse_tokens({"bob": {"role": "admin", "sha256": "plaintext-token"}})
    with pytest.raises(ConfigError, match="expected exactly 'role' and 'sha256'"):
        parse_tokens({"bob": {"role": "admin", "token": "x"}})
