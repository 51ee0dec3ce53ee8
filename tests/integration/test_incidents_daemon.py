"""Incidents against the real daemon: auth on the wire, the CLI, metrics, escalation across a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson
import pytest

from correlator.api.auth import hash_token
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]

pytestmark = pytest.mark.integration

TOKENS = {
    "noc-viewer": {"role": "viewer", "sha256": hash_token("view-123")},
    "noc-operator": {"role": "operator", "sha256": hash_token("op-456")},
    "noc-admin": {"role": "admin", "sha256": hash_token("adm-789")},
}
VIEW = {"Authorization": "Bearer view-123"}
OP = {"Authorization": "Bearer op-456"}
ADMIN = {"Authorization": "Bearer adm-789"}


def get(d, path, headers=None):
    status, _, body = d.request("GET", path, headers=headers)
    return status, orjson.loads(body)


def test_auth_on_the_wire_and_webhook_token_stays_separate(make_daemon):
    d = make_daemon(http={"tokens": TOKENS})
    assert get(d, "/api/v1/events")[0] == 401
    assert get(d, "/api/v1/events", VIEW)[0] == 200
    assert get(d, "/api/v1/incidents", {"Authorization": "Bearer adm-wrong"})[0] == 401
    assert d.post_json("/api/v1/incidents", {"title": "x"}, OP)[0] == 403
    # Ingest keeps its own token (none configured here): no API token needed to send events.
    assert d.post_json("/api/v1/events", {"host": "h", "type": "t"})[0] == 202
    status, doc = get(d, "/api/v1/openapi.json")
    assert status == 200 and {"/healthz", "/readyz", "/metrics", "/api/v1/incidents"} <= set(doc["paths"])
    assert d.metric("correlator_api_auth_failures_total", {"reason": "missing"}) == 1
    assert "view-123" not in d.log() and "adm-789" not in d.log()


def cli(d, *args: str, token: str = "op-456") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRELATOR_URL": d.url, "CORRELATOR_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "correlator", "incidents", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_cli_list_show_ack_resolve(make_daemon):
    d = make_daemon(http={"tokens": TOKENS})
    status, doc = d.post_json(
        "/api/v1/incidents", {"title": "BGP session down", "host": "edge-1", "impact": 1, "urgency": 1}, ADMIN
    )
    assert status == 201 and doc["incident"]["id"] == "INC-000001"
    assert d.metric("correlator_incidents_open", {"priority": "P1"}) == 1
    out = cli(d, "list", "--priority", "P1")
    assert out.returncode == 0, out.stderr
    assert "INC-000001  P1  new" in out.stdout and "BGP session down" in out.stdout
    out = cli(d, "ack", "INC-000001", "--note", "on it")
    assert out.returncode == 0 and "INC-000001 is now acknowledged" in out.stdout
    out = cli(d, "ack", "INC-000001")
    assert out.returncode == 1 and "HTTP 409" in out.stderr
    out = cli(d, "resolve", "1", "--code", "peer_reset", "--notes", "cleared the session")
    assert out.returncode == 0 and "resolved" in out.stdout
    out = cli(d, "show", "INC-000001")
    assert "noc-operator" in out.stdout and "resolve" in out.stdout and "peer_reset" in out.stdout
    out = cli(d, "--json", "list", "--status", "resolved")
    assert [i["id"] for i in orjson.loads(out.stdout)["incidents"]] == ["INC-000001"]
    assert cli(d, "list", token="view-123").returncode == 0
    out = cli(d, "ack", "1", token="view-123")
    assert out.returncode == 1 and "HTTP 403" in out.stderr
    assert d.metric("correlator_incidents_open", {"priority": "P1"}) == 0
    assert d.metric("correlator_incident_time_to_resolve_seconds_count") == 1


def test_escalation_deadline_survives_a_restart(make_daemon):
    d = make_daemon(incidents={"escalation": {"P1": [{"after": "2s"}]}})
    status, doc = d.post_json("/api/v1/incidents", {"title": "core down", "impact": 1, "urgency": 1})
    assert status == 201 and doc["incident"]["next_escalation_at"] is not None
    assert d.stop() == 0  # stopped before the deadline: it must fire after the restart
    d.start()
    d.wait_for(
        lambda: get(d, "/api/v1/incidents/1")[1]["incident"]["escalation_level"] == 1, what="escalation"
    )
    timeline = get(d, "/api/v1/incidents/1")[1]["timeline"]
    assert [e["action"] for e in timeline] == ["open", "escalate"]
    assert d.metric("correlator_incident_escalations_total", {"level": "1"}) == 1


def test_daemon_on_postgresql(make_daemon, pg_dsn):
    asyncio.run(reset_pg(pg_dsn))
    d = make_daemon(storage={"dsn": pg_dsn})
    assert d.post_json("/api/v1/events", {"host": "pg-host", "type": "t", "id": "pg-1"})[0] == 202
    d.wait_for(lambda: d.events("host=pg-host"), what="event stored in PostgreSQL")
    assert d.post_json("/api/v1/incidents", {"title": "on postgres"})[0] == 201
    assert d.stop() == 0
    d.start()
    assert get(d, "/api/v1/incidents/INC-000001")[1]["incident"]["title"] == "on postgres"
    checks = {
        "store": True,
        "journal": True,
        "pipeline": True,
        "incidents": True,
        "records": True,
        "collector:webhook": True,
    }
    assert get(d, "/readyz")[1]["checks"] == checks
