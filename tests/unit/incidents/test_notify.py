"""Outbound notifications against a real local aiohttp server: templates, subscriptions, retries."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from correlator.event import Severity
from correlator.incidents.settings import parse_settings
from correlator.notify.incidents import Notifier, render
from correlator.notify.store import Notice, OutboxStore
from tests.support.http import serve_posts
from tests.unit.incidents.conftest import T0, request


@pytest.fixture
async def receiver():
    """A webhook receiver on 127.0.0.1: records bodies; answers 500 to the first `fail` requests
    (503 with that Retry-After when `retry_after` is set)."""
    got: list[tuple[str, bytes, dict[str, str]]] = []
    state: dict[str, Any] = {"fail": 0, "retry_after": None}

    async def hook(req: web.Request) -> web.Response:
        if state["fail"] > 0:
            state["fail"] -= 1
            if state["retry_after"] is not None:
                return web.Response(status=503, headers={"Retry-After": state["retry_after"]})
            return web.Response(status=500)
        got.append((req.path, await req.read(), dict(req.headers)))
        return web.Response(status=204)

    async with serve_posts(hook) as base:
        yield base, got, state


def settings(base: str, **extra):
    return parse_settings(
        {
            "notify": {
                "chat": {
                    "url": f"{base}/chat",
                    "send_on": ["open", "resolve"],
                    "template": '{"text": "$id [$priority] $title on $host: $kind"}',
                    "headers": {"X-Team": "noc"},
                    "retry_delay": "10ms",
                },
                "pager": {"url": f"{base}/pager", "send_on": ["major"], "retry_delay": "10ms"},
                "oncall": {"url": f"{base}/oncall", "send_on": [], "retry_delay": "10ms"},
            },
            **extra,
        }
    )


async def test_open_resolve_and_major_notifications(make_service, clock, receiver):
    base, got, _ = receiver
    svc = await make_service(settings(base, escalation={"P1": [{"after": "5m", "notify": ["oncall"]}]}))
    await svc.apply([request("open", T0, title='Fibre "cut"', severity=Severity.CRITICAL)])
    await svc.settled()  # the notices go out once stored
    clock.advance_to(T0 + 300)
    await svc.run_due()
    await svc.apply([request("resolve", T0 + 400)])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(5)
    by_path = {}
    for path, body, headers in got:
        by_path.setdefault(path, []).append((body, headers))
    chat = [orjson.loads(b) for b, _ in by_path["/chat"]]
    assert chat == [
        {"text": 'INC-000001 [P1] Fibre "cut" on core-sw1: open'},
        {"text": 'INC-000001 [P1] Fibre "cut" on core-sw1: resolve'},
    ]
    assert by_path["/chat"][0][1]["X-Team"] == "noc"
    pager = orjson.loads(by_path["/pager"][0][0])
    assert pager["kind"] == "major" and pager["incident"]["id"] == "INC-000001" and pager["incident"]["major"]
    oncall = orjson.loads(by_path["/oncall"][0][0])
    assert oncall["kind"] == "escalate" and oncall["incident"]["escalation_level"] == 1


async def test_retries_then_gives_up_and_counts(receiver):
    base, got, state = receiver
    targets = settings(base).notify
    n = Notifier(targets)
    await n.start()
    try:
        state["fail"] = 2  # two 500s, then accepted: within the 3 retries
        n.submit("open", {"id": "INC-000009", "title": "x"})
        await n.drain(5)
        assert len(got) == 1
        sent = REGISTRY.get_sample_value(
            "correlator_incident_notifications_total", {"target": "chat", "outcome": "sent"}
        )
        assert sent and sent >= 1
        state["fail"] = 10
        before = REGISTRY.get_sample_value(
            "correlator_incident_notifications_total", {"target": "chat", "outcome": "failed"}
        )
        n.submit("open", {"id": "INC-000010", "title": "y"})
        await n.drain(5)
        after = REGISTRY.get_sample_value(
            "correlator_incident_notifications_total", {"target": "chat", "outcome": "failed"}
        )
        assert (after or 0) == (before or 0) + 1
        assert state["fail"] == 6  # 1 try + 3 retries
    finally:
        await n.stop()


async def test_retry_after_is_honoured(receiver):
    """retry_delay is an hour: the notice arriving means the receiver's Retry-After: 0 was waited instead."""
    base, got, state = receiver
    n = Notifier(parse_settings({"notify": {"chat": {"url": f"{base}/chat", "retry_delay": "1h"}}}).notify)
    await n.start()
    try:
        state["fail"], state["retry_after"] = 1, "0"
        n.submit("open", {"id": "INC-000011", "title": "z"})
        await n.drain(30)
        assert [path for path, _, _ in got] == ["/chat"] and state["fail"] == 0
    finally:
        await n.stop()


def test_template_values_are_json_escaped_only_for_json_bodies():
    s = parse_settings(
        {
            "notify": {
                "j": {"url": "http://127.0.0.1:1/", "template": '{"t": "$title", "x": "$unknown"}'},
                "t": {"url": "http://127.0.0.1:1/", "template": "$title\n", "content_type": "text/plain"},
            }
        }
    )
    doc = {"title": 'a "b"\nc'}
    assert orjson.loads(render(s.notify["j"], "open", doc)) == {"t": 'a "b"\nc', "x": "$unknown"}
    assert render(s.notify["t"], "open", doc) == b'a "b"\nc\n'


async def test_a_notice_left_by_the_previous_run_keeps_its_content_type_and_takes_todays_headers(
    receiver, tmp_path
):
    """Saved with the Content-Type its body was rendered for; other headers (tokens) are read from
    the configuration at sending time, never stored."""
    base, got, _ = receiver
    db = tmp_path / "outbox.db"
    store = OutboxStore(db, "incident notify")
    await store.open()
    await store.write(
        [Notice("n1", "chat", b"INC-000001 opened", time.time(), {"Content-Type": "text/plain"})], [], []
    )
    await store.close()
    n = Notifier(settings(base).notify, db)
    await n.start()
    await n.drain(30)
    await n.stop()
    assert [(path, body) for path, body, _ in got] == [("/chat", b"INC-000001 opened")]
    headers = got[0][2]
    assert headers["Content-Type"] == "text/plain" and headers["X-Team"] == "noc"
    assert parse_settings({"notify": {"x": {"url": base, "max_age": "2h"}}}).notify["x"].max_age == 7200
