"""Requests that are not valid HTTP, sent over raw sockets: each gets the JSON error format (400), is
counted by a bounded reason, and the log holds a few short lines, never a traceback apiece."""

from __future__ import annotations

import socket

import orjson
import pytest

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
