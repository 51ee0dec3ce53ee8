"""HTTP workers (`http.workers`): webhook ingest in extra processes on the daemon's port, the
journal still written by the daemon alone, 202 only once durable."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.integration.test_durability import ndjson, sigkill_during_burst
from tests.support.daemon import DaemonProcess, alive, child_pids, pid_holding

pytestmark = pytest.mark.integration

SOURCES = {"am": {"format": "alertmanager"}}


def am_alert(i: int) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {"alertname": "HighLoad", "instance": f"h{i}", "severity": "warning"},
        "annotations": {"summary": "load"},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": f"{i:016x}",
    }


def workers_of(d: DaemonProcess, n: int) -> list[int]:
    assert d.proc is not None
    return d.wait_for(lambda: len(pids := child_pids(d.proc.pid)) == n and pids, 20, f"{n} http workers")  # type: ignore[union-attr]


def test_workers_ingest_count_and_pass_other_routes_through(make_daemon):
    d = make_daemon(http={"workers": 2}, collectors={"webhook": {"sources": SOURCES}})
    workers_of(d, 2)
    assert d.metric("correlator_http_workers") == 2
    # One connection per request (urllib): the kernel spreads them over the daemon and its workers.
    for b in range(30):
        status, _, _ = d.request(
            "POST", "/api/v1/events", ndjson(f"b{b}", 10), {"Content-Type": "application/x-ndjson"}
        )
        assert status == 202
        doc = {"version": "4", "status": "firing", "alerts": [am_alert(b)]}
        assert d.post_json("/api/v1/webhooks/am", doc)[0] == 202
    d.wait_for(lambda: len(d.events("type=burst")) == 300, what="the generic events stored")
    d.wait_for(lambda: len(d.events("source=webhook:am")) == 30, what="the alerts stored")
    assert d.metric("correlator_events_received_total", {"source": "webhook:generic"}) == 300
    # Refusals in a worker reach the daemon's /metrics (sent every second).
    for _ in range(20):
        status, _, body = d.request("POST", "/api/v1/events", b"{nope", {"Content-Type": "application/json"})
        assert status == 400 and b'"error"' in body
    d.wait_for(
        lambda: (
            d.metric(
                "correlator_events_rejected_total", {"source": "webhook:generic", "reason": "malformed_json"}
            )
            == 20
        ),
        what="worker rejections counted",
    )
    # The workers' channel is not reachable from the port, whichever process answers.
    for _ in range(10):
        status, _, body = d.request("POST", "/internal/v1/journal", b"[]", {"X-Count": "0"})
        assert status == 404 and b'"error"' in body
        assert d.get("/api/v1/events?limit=1")[0] == 200  # any other route, through a worker or not


def test_killed_worker_acknowledges_nothing_and_is_replaced(make_daemon):
    d = make_daemon(http={"workers": 2})
    before = workers_of(d, 2)
    for attempt in range(200):  # until a worker, not the daemon, holds the connection
        body = ndjson(f"cut{attempt}", 50)
        client = socket.create_connection(("127.0.0.1", d.port))
        head = (
            f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        client.sendall(head + body[: len(body) // 2])  # the request is in hand, half its batch
        holder = d.wait_for(lambda c=client: pid_holding(c), 5, "the connection's process")
        if holder in before:
            break
        client.sendall(body[len(body) // 2 :])  # the daemon's own: let it finish normally
        assert b" 202 " in client.recv(4096)
        client.close()
    else:
        pytest.fail("no connection reached a worker")
    os.kill(holder, signal.SIGKILL)
    client.settimeout(10)
    try:
        answer = client.recv(4096)
    except ConnectionResetError:  # the kernel resets a connection closed with unread data
        answer = b""
    client.close()
    assert b" 202 " not in answer  # the connection ends without an acknowledgement
    d.wait_for(lambda: not alive(holder), 10, "the killed worker gone")
    after = workers_of(d, 2)
    assert holder not in after
    d.wait_for(lambda: d.metric("correlator_http_worker_restarts_total") == 1, what="restart counted")
    # The replacement works: every request is acknowledged and stored.
    for b in range(20):
        status, _, _ = d.request(
            "POST", "/api/v1/events", ndjson(f"r{b}", 5), {"Content-Type": "application/x-ndjson"}
        )
        assert status == 202
    stored = d.wait_for(
        lambda: len(ids := [e["id"] for e in d.events("type=burst")]) == 100 + 50 * attempt and ids,
        what="the acknowledged events",
    )
    assert not [i for i in stored if i.startswith(f"cut{attempt}-")]  # nothing of the cut batch


async def test_sigkill_of_the_daemon_with_workers_loses_nothing_acknowledged(make_daemon):
    await sigkill_during_burst(make_daemon(http={"workers": 2}))


def test_sigterm_stops_workers_with_the_daemon(make_daemon):
    d = make_daemon(http={"workers": 2})
    pids = workers_of(d, 2)
    d.wait_for(lambda: d.metric("correlator_http_workers_connected") == 2, 20, "the workers own the port")
    assert d.stop() == 0
    assert not any(alive(p) for p in pids)
    # The workers' channels closed during the shutdown: the daemon did not take the port back.
    stopping = d.log().split("shutting down", 1)[1]
    assert "the daemon accepts on the public port" not in stopping
    assert not (d.workdir / "var" / "http-workers.sock").exists()
