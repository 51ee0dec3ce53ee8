"""Requests that are not valid HTTP, sent over raw sockets: each gets the JSON error format (400), is
counted by a bounded reason, and the log holds a few short lines, never a traceback apiece."""

from __future__ import annotations

import gzip
import socket

import orjson
import pytest

from correlator.api.auth import hash_token

pytestmark = pytest.mark.integration

BROKEN = [
    # (request bytes, reason)
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Probe: a\x01b\r\n\r\n", "bad_header"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Probe\x00: a\r\n\r\n", "bad_header"),
    (b"GET /hea lthz HTTP/1.1 extra\r\nHost: x\r\n\r\n", "bad_request_line"),
    (b"GET /healthz HTTP/9.Z\r\nHost: x\r\n\r\n", "bad_request_line"),
    (b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "bad_framing"),
    (b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", "bad_framing"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, "bad_method"),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "too_long"),
]


def exchange(port: int, data: bytes) -> tuple[bytes, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):  # the server closes the connection after the answer
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status.encode(), headers, body


def test_requests_that_are_not_http_get_json_400s_and_a_bounded_log(make_daemon):
    d = make_daemon()
    for data, reason in BROKEN * 2:
        status, headers, body = exchange(d.port, data)
        assert status.split()[1] == b"400", (data[:60], status)
        assert headers["content-type"].startswith("application/json")
        doc = orjson.loads(body)
        assert doc["error"].startswith("not valid HTTP: ") and doc["reason"] == reason, (data[:60], doc)
    for reason in {r for _, r in BROKEN}:
        expected = 2 * sum(1 for _, r in BROKEN if r == reason)
        assert d.metric("correlator_http_invalid_requests_total", {"reason": reason}) == expected
    # Still serving, and the log has a few one-line warnings, then a count: no traceback, no ERROR.
    assert d.get("/healthz") == (200, {"status": "ok"})
    log = d.log()
    assert "Traceback" not in log and "Error handling request" not in log
    lines = [line for line in log.splitlines() if "not valid HTTP" in line]
    assert 1 <= len(lines) <= 5
    assert all(len(line) < 400 and "WARNING" in line for line in lines)


ADMIN_TOKEN = "admin-token-of-the-test"
TOKENS = {"noc": {"role": "admin", "sha256": hash_token(ADMIN_TOKEN)}}


def post_head(path: str, ctype: str, length: int, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Type: {ctype}", f"Content-Length: {length}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def test_a_body_that_does_not_decode_is_a_400_on_every_route_and_never_a_bug(make_daemon):
    d = make_daemon(
        http={"tokens": TOKENS}, collectors={"webhook": {"sources": {"am": {"format": "alertmanager"}}}}
    )
    form, json = "application/x-www-form-urlencoded", "application/json"
    body = b"notgzip"
    routes = [
        ("/signin", form, ()),  # the console's sign-in: no token needed
        ("/api/v1/webhooks/am", json, ()),  # a webhook source without a token
        ("/api/v1/events", json, ()),
        ("/api/v1/incidents", json, (f"Authorization: Bearer {ADMIN_TOKEN}",)),  # a records route
    ]
    for path, ctype, extra in routes * 2:
        head = post_head(path, ctype, len(body), "Content-Encoding: gzip", "Connection: close", *extra)
        status, headers, answer = exchange(d.port, head + body)
        assert status.split()[1] == b"400", (path, status, answer)
        assert headers["content-type"].startswith("application/json")
        doc = orjson.loads(answer)
        assert doc["reason"] == "bad_encoding" and doc["error"].startswith("not valid HTTP: "), (path, doc)
    d.wait_for(  # polled: with HTTP workers, their counts reach the daemon every second
        lambda: (
            d.metric("correlator_http_invalid_requests_total", {"reason": "bad_encoding"}) == 2 * len(routes)
        ),
        10,
        "the bodies counted",
    )
    assert d.metric("correlator_http_unhandled_errors_total") == 0
    # Valid gzip still decodes.
    event = gzip.compress(orjson.dumps({"host": "h", "type": "t"}))
    head = post_head("/api/v1/events", json, len(event), "Content-Encoding: gzip", "Connection: close")
    assert exchange(d.port, head + event)[0].split()[1] == b"202"
    log = d.log()
    assert "Traceback" not in log and "ERROR" not in log
    lines = [line for line in log.splitlines() if "not valid HTTP" in line]
    assert 1 <= len(lines) <= 5 and all("WARNING" in line for line in lines)


def test_a_client_gone_mid_body_is_counted_as_gone_not_as_a_bug(make_daemon):
    d = make_daemon(http={"tokens": TOKENS})
    cut = [
        post_head("/signin", "application/x-www-form-urlencoded", 100) + b"csrf=",
        post_head("/api/v1/incidents", "application/json", 100, f"Authorization: Bearer {ADMIN_TOKEN}")
        + b'{"ti',
    ]
    for n, data in enumerate(cut, 1):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(data)
        d.wait_for(
            lambda n=n: d.metric("correlator_http_connections_closed_total", {"reason": "client_gone"}) == n,
            10,
            f"client gone #{n} counted",
        )
    assert d.metric("correlator_http_unhandled_errors_total") == 0
    assert d.get("/healthz") == (200, {"status": "ok"})
    log = d.log()
    assert "Traceback" not in log and "ERROR" not in log


def test_an_oversized_header_is_refused_without_its_bytes_in_the_log_or_the_answer(make_daemon):
    d = make_daemon()
    secret = "SECRET5" + "a" * 9000
    for header in (f"Authorization: Bearer {secret}", f"Cookie: correlator_session={secret}"):
        status, _, body = exchange(
            d.port, f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode()
        )
        doc = orjson.loads(body)
        assert status.split()[1] == b"400" and doc["reason"] == "too_long", doc
        assert "SECRET5" not in doc["error"] and "8190" in doc["error"], doc
    log = d.log()
    assert "SECRET5" not in log
    lines = [line for line in log.splitlines() if "not valid HTTP" in line]
    assert len(lines) == 2 and all("(too_long)" in line and "8190 bytes" in line for line in lines), lines
