"""The PagerDuty notifier against a local aiohttp server that checks the Events API v2 shape: an
incident's life is trigger, acknowledge and resolve under one dedup_key; the key is never stored."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from correlator.errors import ConfigError
from correlator.event import Severity
from correlator.incidents.settings import parse_settings
from correlator.notify.incidents import Notifier
from correlator.notify.notice import Notice
from correlator.notify.store import OutboxStore
from tests.unit.incidents.conftest import request
from tests.unit.notify.conftest import T0, secret

KEY = "R0UT1NGKEY0123456789abcdefabcdef"
SEVERITIES = {"critical", "error", "warning", "info"}


def events_api_v2(body: dict[str, Any]) -> str | None:
    """The documented rules of POST /v2/enqueue (developer.pagerduty.com, Events API v2)."""
    if body.get("routing_key") != KEY:
        return "routing_key is wrong"
    if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        return "event_action must be trigger, acknowledge or resolve"
    dedup = body.get("dedup_key")
    if not isinstance(dedup, str) or not 0 < len(dedup) <= 255:
        return "dedup_key must be a string of at most 255 characters"
    if body["event_action"] != "trigger":
        return None
    p = body.get("payload")
    if not isinstance(p, dict):
        return "payload is required for trigger"
    if not isinstance(p.get("summary"), str) or not 0 < len(p["summary"]) <= 1024:
        return "payload.summary must be 1..1024 characters"
    if not isinstance(p.get("source"), str) or not p["source"]:
        return "payload.source is required"
    if p.get("severity") not in SEVERITIES:
        return "payload.severity must be critical, error, warning or info"
    return None


def settings(base: str, tmp_path, **extra: Any) -> dict[str, Any]:
    target = {"type": "pagerduty", "url": f"{base}/v2/enqueue", "retry_delay": "10ms",
              "routing_key_file": secret(tmp_path, "pd-key", KEY), **extra}  # fmt: skip
    return {"notify": {"pd": target}}


async def test_an_incident_life_is_trigger_acknowledge_resolve_under_one_dedup_key(
    service, clock, receiver, tmp_path
):
    rec, base = receiver
    rec.check = events_api_v2
    svc = await service(
        settings(base, tmp_path, summary="{{ id }} {{ title }}{% if major %} (MAJOR){% endif %}")
    )
    [inc] = await svc.apply([request("open", T0, title="Fibre cut", severity=Severity.CRITICAL)])
    await svc.settled()  # the notices go out once stored
    clock.advance_to(T0 + 60)
    await svc.act(inc.id, "ack", "alice", {})
    clock.advance_to(T0 + 120)
    await svc.act(inc.id, "resolve", "alice", {})
    await svc.notifier.drain(10)
    bodies = rec.bodies("/v2/enqueue")
    actions = [b["event_action"] for b in bodies]
    # open (P-major is notified too, as a re-trigger), ack, resolve
    assert actions[0] == "trigger" and actions[-2:] == ["acknowledge", "resolve"], actions
    assert {b["dedup_key"] for b in bodies} == {"correlator/INC-000001"}
    trigger = bodies[0]
    assert trigger["payload"]["summary"].startswith("INC-000001 Fibre cut")
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "core-sw1"
    assert trigger["payload"]["timestamp"].endswith("Z") and trigger["client"] == "correlator"
    assert "payload" not in bodies[-1]


async def test_the_routing_key_is_neither_stored_nor_logged(service, receiver, tmp_path, caplog):
    rec, base = receiver
    rec.answers = [web.Response(status=500) for _ in range(10)]
    caplog.set_level(logging.DEBUG)
    svc = await service(settings(base, tmp_path, retries=0, send_on=["open"]))
    await svc.apply([request("open", T0, title="x")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(10)  # refused, logged ("gave up")
    await svc.close()
    svc = await service(settings(base, tmp_path, retry_delay="1h", send_on=["open"]))
    await svc.apply([request("open", T0, key="k2", title="y")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(0.5)  # refused once: its retry waits an hour, in outbox.db
    await svc.close()
    assert "gave up" in caplog.text and KEY not in caplog.text
    with sqlite3.connect(tmp_path / "outbox.db") as c:
        bodies = [bytes(r[0]) for r in c.execute("SELECT body FROM notices")]
    assert len(bodies) == 1 and b'"dedup_key"' in bodies[0] and KEY.encode() not in bodies[0]
    assert KEY not in repr(parse_settings(settings(base, tmp_path)).notify["pd"])


async def test_a_refused_event_is_not_retried(service, receiver, tmp_path):
    """400 is PagerDuty saying the event is invalid: final, counted as failed, never a crash."""
    rec, base = receiver
    rec.answers = [web.json_response({"status": "invalid event"}, status=400)]
    svc = await service(settings(base, tmp_path, send_on=["open"]))
    await svc.apply([request("open", T0, title="x")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(10)
    assert rec.got == [] and rec.answers == []


def test_the_routing_key_comes_from_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"incidents.notify.pd.routing_key_file.*required"):
        parse_settings({"notify": {"pd": {"type": "pagerduty"}}})
    with pytest.raises(ConfigError, match=r"incidents.notify.pd.routing_key': unknown key"):
        parse_settings({"notify": {"pd": {"type": "pagerduty", "routing_key": KEY}}})
    with pytest.raises(ConfigError, match=r"routing_key_file.*is empty"):
        parse_settings(
            {"notify": {"pd": {"type": "pagerduty", "routing_key_file": secret(tmp_path, "e", "")}}}
        )
    s = parse_settings(
        {"notify": {"pd": {"type": "pagerduty", "routing_key_file": secret(tmp_path, "k", KEY)}}}
    )
    assert s.notify["pd"].url == "https://events.pagerduty.com/v2/enqueue"


async def test_an_event_left_by_the_previous_run_gets_the_key_when_sent(receiver, tmp_path):
    """outbox.db holds the event without the key; the restarted notifier adds today's key."""
    rec, base = receiver
    rec.check = events_api_v2
    db = tmp_path / "outbox.db"
    store = OutboxStore(db, "incident notify")
    await store.open()
    body = orjson.dumps({"event_action": "resolve", "dedup_key": "correlator/INC-000007"})
    await store.write([Notice("n1", "pd", body, time.time())], [], [])
    await store.close()
    n = Notifier(parse_settings(settings(base, tmp_path)).notify, db)
    await n.start()
    await n.drain(10)
    await n.stop()
    assert rec.bodies() == [
        {"event_action": "resolve", "dedup_key": "correlator/INC-000007", "routing_key": KEY}
    ]
