"""The complete route -> role table, checked three ways: every route the daemon's app serves has an
entry (and no entry is stale), docs/api.md documents the same roles, and a real request with each
role's token is refused below the route's role and let through from it up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.openapi import ROLES, operation_of, routes
from tests.unit.api.conftest import bearer, daemon_app, token_config
from tests.unit.api.route_roles import ROUTE_ROLES

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
INGEST_TOKEN, SOURCE_TOKEN = "ingest-secret", "am-secret"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (\S+)` \| ([^|]+?) \|")
DOC_ROLES = {"open": None, "ingest token": "webhook", **{r: r for r in ROLES}}
# A path parameter for each template; the role check comes before the handler looks the id up.
PARAMS = {"id": "1", "source": "am"}


@pytest.fixture
async def client(tmp_path):
    """The daemon's app with one API token per role, an ingest token and a token-checked source."""
    webhook = {"token": INGEST_TOKEN, "sources": {"am": {"format": "alertmanager", "token": SOURCE_TOKEN}}}
    overrides = {"http.tokens": token_config(), "collectors": {"webhook": webhook}}
    async with daemon_app(tmp_path, **overrides) as app:
        c = TestClient(TestServer(app, host="127.0.0.1"))
        await c.start_server()
        try:
            yield c
        finally:
            await c.close()


def documented_roles() -> dict[tuple[str, str], str | None]:
    rows = [m.groups() for line in DOCS.read_text().splitlines() if (m := ROW.match(line))]
    assert rows, f"no endpoint table found in {DOCS}"
    return {(method, path): DOC_ROLES[role.strip()] for method, path, role in rows}


async def test_every_served_route_has_its_role_in_the_table_and_in_the_docs(client):
    served = {(m, p): operation_of(h) for m, p, h in routes(client.server.app)}
    assert set(served) - set(ROUTE_ROLES) == set(), "a new route: decide its role in route_roles.py"
    assert set(ROUTE_ROLES) - set(served) == set(), "a route in route_roles.py is not served"
    declared = {route: op.role if op is not None else "<undocumented>" for route, op in served.items()}
    assert declared == {route: None if role == "console" else role for route, role in ROUTE_ROLES.items()}
    api = {route: role for route, role in ROUTE_ROLES.items() if role != "console"}
    assert documented_roles() == api, "docs/api.md 'Endpoints' disagrees with the table"
    pages = {path for (_, path), role in ROUTE_ROLES.items() if role == "console"}
    assert all(not p.startswith("/api/") for p in pages), "console pages stay out of /api/"


async def _status(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = path.format(**PARAMS)
    body = None if method == "GET" else {}
    r = await client.request(method, url, json=body, headers=headers)
    await r.read()
    return r.status


async def test_each_route_refuses_roles_below_its_own_and_admits_its_own_and_above(client):
    for (method, path), role in ROUTE_ROLES.items():
        if role == "console":  # its session and CSRF checks: tests/unit/console
            continue
        answers = {"none": await _status(client, method, path, {})}
        for r in ROLES:
            answers[r] = await _status(client, method, path, bearer(r))
        if role is None:
            assert all(s not in (401, 403) for s in answers.values()), (method, path, answers)
        elif role == "webhook":
            # API tokens do not open ingest: only the ingest (or the source's) token does.
            assert set(answers.values()) == {401}, (method, path, answers)
            token = SOURCE_TOKEN if "{source}" in path else INGEST_TOKEN
            ok = await _status(client, method, path, {"Authorization": f"Bearer {token}"})
            assert ok not in (401, 403), (method, path, ok)
        else:
            needed = ROLES.index(role)
            assert answers["none"] == 401, (method, path, answers)
            for r in ROLES:
                expected_refused = ROLES.index(r) < needed
                assert (answers[r] == 403) is expected_refused, (method, path, r, answers)
                assert answers[r] != 401, (method, path, r, answers)
