"""POST /api/v1/events against the real daemon: valid, invalid, oversized and unauthorised bodies."""

from __future__ import annotations

import time

import orjson
import pytest

pytestmark = pytest.mark.integration

LINK_DOWN = {"host": "core-sw1", "type": "IF-MIB::linkDown", "severity": "major", "resource": "Gi0/1"}


def test_single_event_is_accepted_and_stored(make_daemon):
    d = make_daemon()
    status, doc = d.post_json("/api/v1/events", {**LINK_DOWN, "id": "ev-1", "time": "2026-11-30T10:00:00Z"})
    assert status == 202
    assert doc == {"accepted": 1, "ids": ["ev-1"]}
    stored = d.wait_for(lambda: d.events("host=core-sw1"), what="event stored")
    assert stored[0]["id"] == "ev-1"
    assert stored[0]["time"] == "2026-11-30T10:00:00Z"
    assert stored[0]["source"] == "webhook:generic"
    assert stored[0]["severity"] == "major"


def test_array_and_ndjson_batches(make_daemon):
    d = make_daemon()
    status, doc = d.post_json("/api/v1/events", [{**LINK_DOWN, "id": f"a{i}"} for i in range(3)])
    assert status == 202 and doc["accepted"] == 3
    body = b"\n".join(orjson.dumps({**LINK_DOWN, "id": f"n{i}"}) for i in range(4)) + b"\n"
    status, _, raw = d.request("POST", "/api/v1/events", body, {"Content-Type": "application/x-ndjson"})
    assert status == 202 and orjson.loads(raw)["accepted"] == 4
    d.wait_for(lambda: len(d.events()) == 7, what="7 events stored")


def test_invalid_items_are_named_and_valid_ones_kept(make_daemon):
    d = make_daemon()
    batch = [
        {**LINK_DOWN, "id": "ok-0"},
        {"host": "x", "type": "t", "severity": "disaster"},
        {"type": "no-host"},
        {**LINK_DOWN, "id": "ok-3", "severty": "minor"},
        {**LINK_DOWN, "id": "ok-4"},
    ]
    status, doc = d.post_json("/api/v1/events", batch)
    assert status == 400
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "severity"), (2, "host"), (3, "severty")]
    assert "did you mean 'severity'" in doc["errors"][2]["message"]
    assert doc["accepted"] == ["ok-0", "ok-4"]
    d.wait_for(lambda: {e["id"] for e in d.events()} == {"ok-0", "ok-4"}, what="valid events stored")
    assert d.metric("correlator_events_rejected_total", {"reason": "invalid"}) == 3


def test_texts_over_their_limits_are_refused_as_too_large(make_daemon):
    d = make_daemon()
    batch = [
        {**LINK_DOWN, "host": "h" * 257},
        {**LINK_DOWN, "message": "m" * 16385},
        {**LINK_DOWN, "id": "i" * 129},
        {**LINK_DOWN, "fingerprint": "f" * 257},
        {**LINK_DOWN, "host": ""},
    ]
    status, doc = d.post_json("/api/v1/events", batch)
    assert status == 400
    assert [(e["field"], e["reason"]) for e in doc["errors"]] == [
        ("host", "too_large"),
        ("message", "too_large"),
        ("id", "too_large"),
        ("fingerprint", "too_large"),
        ("host", "invalid"),
    ]
    assert d.metric("correlator_events_rejected_total", {"reason": "too_large"}) == 4
    assert d.metric("correlator_events_rejected_total", {"reason": "invalid"}) == 1


def test_malformed_ndjson_line_does_not_lose_the_others(make_daemon):
    d = make_daemon()
    body = (  # a blank line is skipped but keeps its index
        orjson.dumps({**LINK_DOWN, "id": "l0"})
        + b"\n  \n{not json\n"
        + orjson.dumps({**LINK_DOWN, "id": "l3"})
    )
    status, _, raw = d.request("POST", "/api/v1/events", body, {"Content-Type": "application/x-ndjson"})
    doc = orjson.loads(raw)
    assert status == 400
    assert [e["index"] for e in doc["errors"]] == [2] and "malformed JSON" in doc["errors"][0]["message"]
    assert doc["accepted"] == ["l0", "l3"]


def test_each_ndjson_line_is_judged_by_its_own_text(make_daemon):
    """The door's text and document limits are judged on the line an item was parsed from: the
    verdicts stay with their lines, around a malformed one too."""
    d = make_daemon()
    deep = b"[" * 40 + b"]" * 40
    lines = [
        orjson.dumps({**LINK_DOWN, "id": "l0"}),
        b'{"host":"h","type":"t","attributes":{"k":"a\\u0000"}}',
        b"{not json",
        orjson.dumps({**LINK_DOWN, "id": "l3", "message": "back\\u0000slash"}),  # a literal backslash
        b'{"host":"h","type":"t","attributes":{"k":' + deep + b"}}",
        orjson.dumps({**LINK_DOWN, "id": "l5"}),
    ]
    status, _, raw = d.request(
        "POST", "/api/v1/events", b"\n".join(lines), {"Content-Type": "application/x-ndjson"}
    )
    doc = orjson.loads(raw)
    assert status == 400
    assert [(e["index"], e["reason"]) for e in doc["errors"]] == [
        (1, "bad_text"),
        (2, "malformed_json"),
        (4, "too_deep"),
    ]
    assert doc["accepted"] == ["l0", "l3", "l5"]


def test_malformed_json_body(make_daemon):
    d = make_daemon()
    status, _, raw = d.request("POST", "/api/v1/events", b'{"host": ', {"Content-Type": "application/json"})
    assert status == 400
    assert "malformed JSON" in orjson.loads(raw)["error"]
    assert d.metric("correlator_events_rejected_total", {"reason": "malformed_json"}) == 1


def test_oversized_body_gets_413(make_daemon):
    d = make_daemon(http={"max_body_bytes": 10_000})
    big = [{**LINK_DOWN, "message": "x" * 1000} for _ in range(20)]
    status, doc = d.post_json("/api/v1/events", big)
    assert status == 413
    assert "limit" in doc["error"]
    assert d.get("/healthz")[0] == 200  # still serving


def test_bearer_token(make_daemon):
    d = make_daemon(collectors={"webhook": {"token": "s3cret"}})
    status, _, _ = d.request(
        "POST", "/api/v1/events", orjson.dumps(LINK_DOWN), {"Content-Type": "application/json"}
    )
    assert status == 401
    status, _ = d.post_json("/api/v1/events", LINK_DOWN, {"Authorization": "Bearer wrong"})
    assert status == 401
    status, _ = d.post_json("/api/v1/events", LINK_DOWN, {"Authorization": "Bearer s3cret"})
    assert status == 202
    assert "s3cret" not in d.log()


def test_unsupported_content_type(make_daemon):
    d = make_daemon()
    status, _, _ = d.request("POST", "/api/v1/events", b"host=x", {"Content-Type": "text/plain"})
    assert status == 415


def test_event_query_filters_and_paging(make_daemon):
    d = make_daemon()
    t0 = int(time.time()) - 3600  # event times must be near the receive time (docs/events.md)
    batch = [
        {
            "host": f"h{i % 2}",
            "type": "T",
            "severity": "minor" if i % 3 else "critical",
            "id": f"q{i}",
            "time": t0 + i,
        }
        for i in range(10)
    ]
    assert d.post_json("/api/v1/events", batch)[0] == 202
    d.wait_for(lambda: len(d.events()) == 10, what="10 events")
    assert {e["id"] for e in d.events("host=h0")} == {f"q{i}" for i in range(0, 10, 2)}
    assert {e["id"] for e in d.events("severity=critical")} == {"q0", "q3", "q6", "q9"}
    assert {e["id"] for e in d.events(f"since={t0 + 5}&until={t0 + 7}")} == {"q5", "q6"}
    status, page = d.get("/api/v1/events?limit=4")
    assert len(page["events"]) == 4 and page["next_cursor"]
    assert len(d.events()) == 10  # the helper follows the cursor
    status, doc = d.get("/api/v1/events?severity=huge")
    assert status == 400 and doc["field"] == "severity"


def test_a_sender_reset_mid_body_is_counted_not_taken_for_a_lost_store(make_daemon):
    """A client that resets its connection half-way through a body: nothing accepted, counted as
    `client_gone`, neither a 500 (a bug) nor a lost database (503)."""
    import socket
    import struct

    d = make_daemon()
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(
        b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n[{"host":'
    )
    d.wait_for(lambda: d.metric("correlator_http_connections") >= 1, 5, "the connection accepted")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a RST
    s.close()
    gone = {"reason": "client_gone"}
    d.wait_for(lambda: d.metric("correlator_events_rejected_total", gone) == 1, 5, "client_gone counted")
    assert d.metric("correlator_http_unhandled_errors_total") == 0
    assert d.metric("correlator_http_store_unavailable_total") == 0
    assert d.get("/healthz") == (200, {"status": "ok"})
