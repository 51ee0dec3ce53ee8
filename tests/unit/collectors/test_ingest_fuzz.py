"""Property-based fuzzing of every HTTP ingest format and every API body, against the real app.

Properties: no answer is a 5xx; every error answer is the documented JSON `{"error": ...}`; the
valid items of a batch are accepted next to invalid ones; everything made durable reads back
from the journal and passes the door again (nothing poisonous got in); the server stays healthy.
One in-process server (journal, SQLite stores, webhook collector) serves the whole module.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator import door
from tests.support.inprocess import Answer, InProcessDaemon

SECRET = "n4g10s"
TOKEN = "ingest-token"
WEBHOOK = {
    "sources": {
        "am": {"format": "alertmanager"},
        "gf": {"format": "grafana"},
        "zb": {"format": "zabbix"},
        "ng": {"format": "nagios"},
        "mp": {
            "format": "mapped",
            "items": "$.alarms",
            "fields": {"host": "$.node", "type": "$.code", "severity": "$.prio", "message": "$.text"},
            "attributes": {"region": "$.where.region"},
        },
        "signed": {"format": "nagios", "hmac_secret": SECRET, "token": TOKEN},
    }
}
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDaemon]:
    d = InProcessDaemon(Path(tmp_path_factory.mktemp("fuzz")))
    d.start(WEBHOOK)
    yield d
    # Whatever any fuzz case got accepted is readable and would pass the door again.
    for ev in d.journal_events():
        door.check(ev, check_time=False)
    assert d.request("GET", "/healthz").status == 200
    d.stop()


def assert_answer(a: Answer) -> None:
    assert a.status < 500, (a.status, a.body[:300])
    if a.status >= 400:
        doc = a.json()  # never aiohttp's plain text
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str), a.body[:300]


# -- generators ---------------------------------------------------------------------------------

# Text that includes what the door refuses: NUL, controls, non-ASCII; lone surrogates cannot be
# encoded in JSON by orjson, so they arrive as escapes in `raw_escapes` below.
texts = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\t", "é", "\u2028"]), max_size=40
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
times = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2050-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "not a time",
            "",
        ]
    ),
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what JSON senders can write (orjson's range)
    json_values,
)
FIELDS = ["id", "time", "host", "type", "severity", "resource", "message", "attributes", "fingerprint"]


def deep(depth: int, leaf: object = 1) -> object:
    doc = leaf
    for i in range(depth):
        doc = {"k": doc} if i % 2 else [doc]
    return doc


# Up to what orjson will still write around it; deeper bodies are sent as raw bytes below.
depths = st.integers(min_value=1, max_value=240).map(deep)
hostile_events = st.fixed_dictionaries(
    {},
    optional={
        "host": texts | json_values,
        "type": texts | json_values,
        "severity": st.sampled_from(["major", "MAJOR", "bogus", ""]) | json_values,
        "time": times,
        "message": texts | json_values,
        "attributes": json_values | depths | st.dictionaries(texts, depths, max_size=2),
        "id": texts | json_values,
        "fingerprint": texts,
        "resource": texts,
        "sevrity": texts,
    },
)


_serial = itertools.count()


def good_event(n: int) -> dict[str, object]:
    return {
        "id": f"good-{next(_serial)}",
        "host": f"good-{n}",
        "type": "fuzz.good",
        "severity": "minor",
        "attributes": {"n": n},
    }


def raw_escapes(doc: bytes) -> bytes:
    """Lone surrogates and NUL written as JSON escapes, the way a client could send them."""
    return doc.replace(b'"', b'"\\ud800', 1) if b'"' in doc else doc


# -- the generic format -------------------------------------------------------------------------


@FUZZ
@given(bad=st.lists(hostile_events, max_size=4), positions=st.randoms(use_true_random=False))
def test_generic_batches_keep_their_good_items(daemon, bad, positions):
    good = [good_event(i) for i in range(3)]
    batch: list[object] = [*good]
    for item in bad:
        batch.insert(positions.randint(0, len(batch)), item)
    try:
        body = orjson.dumps(batch)
    except TypeError:  # too deep even for orjson to write: send it as text
        body = b"[" + b"[" * 300 + b"]" * 300 + b"," + b",".join(orjson.dumps(g) for g in good) + b"]"
    a = daemon.request("POST", "/api/v1/events", body, {"Content-Type": "application/json"})
    assert_answer(a)
    assert a.status in (202, 400), a.body[:300]
    doc = a.json()
    accepted = doc["ids"] if a.status == 202 else doc.get("accepted")
    if accepted is None:  # the whole body was refused (malformed JSON): nothing was taken
        assert "errors" not in doc
        return
    assert {g["id"] for g in good} <= set(accepted)
    for e in doc.get("errors", []):
        assert e["reason"] in {"invalid", "too_deep", "too_large", "bad_text", "time_out_of_range"}


@FUZZ
@given(
    lines=st.lists(
        hostile_events.map(orjson.dumps)
        | st.binary(max_size=30)
        | st.integers(1, 1100).map(lambda n: b"[" * n + b"]" * n),
        max_size=5,
    )
)
def test_ndjson_lines_keep_their_good_lines(daemon, lines):
    good = good_event(0)
    body = b"\n".join([orjson.dumps(good), *[ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]])
    a = daemon.request("POST", "/api/v1/events", body, {"Content-Type": "application/x-ndjson"})
    assert_answer(a)
    assert a.status in (202, 400)
    doc = a.json()
    assert good["id"] in (doc["ids"] if a.status == 202 else doc["accepted"])


@pytest.mark.parametrize("depth", [32, 33, 252, 253, 300, 1022, 1023, 1030])
def test_nesting_depths_in_a_batch_are_4xx_and_the_rest_is_kept(daemon, depth):
    body = (
        b'[{"host":"d","type":"deep","attributes":{"x":'
        + b"[" * depth
        + b"]" * depth
        + b"}},"
        + orjson.dumps(good_event(9))
        + b"]"
    )
    a = daemon.request("POST", "/api/v1/events", body, {"Content-Type": "application/json"})
    assert_answer(a)
    doc = a.json()
    if depth + 3 > 1024:  # beyond orjson's parser: the body is not JSON it will read
        assert a.status == 400 and "malformed JSON" in doc["error"]
    elif depth < door.MAX_DEPTH:
        assert a.status == 202 and doc["accepted"] == 2
    else:
        assert a.status == 400 and doc["errors"][0]["reason"] == "too_deep" and len(doc["accepted"]) == 1


def test_year_10000_and_nul_are_refused_and_events_still_page(daemon):
    items = [
        {"host": "y", "type": "t", "time": "9999-12-31T23:59:59-01:00"},
        {"host": "h\x00", "type": "t"},
        {"host": "h", "type": "t", "time": time.time() + 3 * 86400},
        good_event(1),
    ]
    a = daemon.request("POST", "/api/v1/events", orjson.dumps(items), {"Content-Type": "application/json"})
    assert a.status == 400
    doc = a.json()
    assert [(e["index"], e["reason"]) for e in doc["errors"]] == [
        (0, "time_out_of_range"),
        (1, "bad_text"),
        (2, "time_out_of_range"),
    ]
    assert len(doc["accepted"]) == 1
    escaped = b'[{"host":"a\\u0000b","type":"t"}]'
    a = daemon.request("POST", "/api/v1/events", escaped, {"Content-Type": "application/json"})
    assert a.status == 400 and a.json()["errors"][0]["field"] == "host"
    surrogate = raw_escapes(b'[{"host":"h","type":"t"}]')
    assert_answer(daemon.request("POST", "/api/v1/events", surrogate, {"Content-Type": "application/json"}))
    assert daemon.request("GET", "/api/v1/events?limit=1000").status == 200


# -- the monitoring systems' formats ------------------------------------------------------------

alerts = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved"]) | json_values,
        "labels": st.dictionaries(st.sampled_from(["alertname", "host", "instance", "severity"]), texts)
        | json_values,
        "annotations": json_values,
        "startsAt": times,
        "endsAt": times,
        "fingerprint": json_values,
        "values": json_values | depths,
    },
)
grafana_legacy = st.fixed_dictionaries(
    {"ruleName": texts | json_values},
    optional={
        "ruleId": json_values,
        "state": st.sampled_from(["alerting", "ok", "no_data"]) | json_values,
        "evalMatches": json_values | depths,
        "tags": st.dictionaries(st.sampled_from(["host", "severity", "resource"]), json_values) | json_values,
        "message": json_values,
        "title": json_values,
    },
)
zabbix = st.fixed_dictionaries(
    {},
    optional={
        k: texts | json_values
        for k in [
            "host",
            "trigger_name",
            "event_name",
            "event_status",
            "event_value",
            "event_nseverity",
            "event_severity",
            "trigger_id",
            "event_id",
            "event_timestamp",
            "event_date",
            "event_time",
            "item_key",
            "event_opdata",
        ]
    },
)
nagios = st.fixed_dictionaries(
    {},
    optional={
        k: texts | json_values
        for k in [
            "host_name",
            "service_description",
            "notification_type",
            "service_state",
            "host_state",
            "timestamp",
            "output",
        ]
    },
)
mapped = st.fixed_dictionaries(
    {
        "alarms": st.lists(
            st.fixed_dictionaries(
                {}, optional={k: texts | json_values for k in ["node", "code", "prio", "text", "where"]}
            ),
            max_size=4,
        )
        | json_values
    }
)
BODIES = {
    "am": st.fixed_dictionaries({"alerts": st.lists(alerts, max_size=4) | json_values}),
    "gf": grafana_legacy | st.fixed_dictionaries({"alerts": st.lists(alerts, max_size=3)}),
    "zb": zabbix | st.lists(zabbix, max_size=3),
    "ng": nagios | st.lists(nagios, max_size=3),
    "mp": mapped,
}


@FUZZ
@given(source=st.sampled_from(sorted(BODIES)), data=st.data())
def test_every_webhook_format_answers_json_and_never_5xx(daemon, source, data):
    doc = data.draw(BODIES[source])
    try:
        body = orjson.dumps(doc)
    except TypeError:
        body = b"{" * 400
    a = daemon.request("POST", f"/api/v1/webhooks/{source}", body, {"Content-Type": "application/json"})
    assert_answer(a)


@FUZZ
@given(body=st.binary(max_size=200) | json_values.map(lambda v: orjson.dumps(v)), form=st.booleans())
def test_arbitrary_bytes_to_every_ingest_route(daemon, body, form):
    ctype = "application/x-www-form-urlencoded" if form else "application/json"
    for path in ["/api/v1/events", *(f"/api/v1/webhooks/{s}" for s in BODIES), "/api/v1/webhooks/nope"]:
        assert_answer(daemon.request("POST", path, body, {"Content-Type": ctype}))


# Header values as a client may send them: visible ASCII, space, and any byte above 0x7f.
header_bytes = st.lists(st.integers(0x20, 0x7E) | st.integers(0x80, 0xFF), max_size=60).map(bytes)


@FUZZ
@given(auth=header_bytes, sig=header_bytes)
def test_non_ascii_bytes_in_authorization_and_signature_headers_are_401(daemon, auth, sig):
    body = b'{"notification_type":"PROBLEM","host_name":"sw-9","host_state":"DOWN"}'
    headers = {"Content-Type": "application/json", "Authorization": b"Bearer " + auth, "X-Signature-256": sig}
    a = daemon.request("POST", "/api/v1/webhooks/signed", body, headers)
    assert_answer(a)
    assert a.status == 401
    assert_answer(daemon.request("POST", "/api/v1/events", b"{}", headers))
    assert_answer(daemon.request("GET", "/api/v1/incidents", None, headers))


def test_control_bytes_in_a_header_are_refused_by_the_http_parser_and_harm_nothing(daemon):
    """Not HTTP at all: the parser refuses it before any handler, in the JSON error format; the
    server carries on."""
    a = daemon.request("GET", "/api/v1/incidents", None, {"Authorization": b"Bearer \x01\x7f"})
    assert a.status == 400
    assert_answer(a)
    assert a.json()["reason"] == "bad_header"
    assert daemon.request("GET", "/healthz").status == 200


def test_signed_source_accepts_the_right_signature_among_the_fuzz(daemon):
    body = b'{"notification_type":"PROBLEM","host_name":"sw-9","host_state":"DOWN"}'
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {TOKEN}",
        "X-Signature-256": f"sha256={sig}",
    }
    assert daemon.request("POST", "/api/v1/webhooks/signed", body, headers).status == 202


# -- the API: every route, every body -----------------------------------------------------------


def api_routes(daemon: InProcessDaemon) -> list[tuple[str, str]]:
    out = []
    for r in daemon.app.router.routes():
        path = r.resource.canonical if r.resource is not None else ""
        if r.method in ("GET", "POST", "PATCH") and path.startswith("/api/v1/") and "webhooks" not in path:
            out.append((r.method, path))
    return sorted(set(out))


ids = st.sampled_from(
    [
        "1",
        "INC-000001",
        "CHG-000001",
        "PRB-000001",
        "KE-000001",
        "0",
        "99999999999999999999999",
        "²",
        "%00",
        "x" * 300,
    ]
)
queries = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "cursor",
            "since",
            "until",
            "state",
            "status",
            "host",
            "severity",
            "priority",
            "major",
            "from",
            "to",
            "period",
            "kind",
            "bogus",
        ]
    ),
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "1001",
            "99999999999999999999999",
            "²",
            "nan",
            "1e400",
            "9999-12-31T23:59:59-01:00",
            "a,b",
            "%00",
            "true",
        ]
    ),
    max_size=3,
)


@FUZZ
@given(data=st.data())
def test_every_api_route_and_body_answers_json_and_never_5xx(daemon, data):
    routes = api_routes(daemon)
    assert len(routes) > 20
    method, path = data.draw(st.sampled_from(routes))
    path = path.replace("{id}", quote(data.draw(ids), safe="%"))
    query = "&".join(f"{k}={quote(v, safe='%,:')}" for k, v in data.draw(queries).items())
    body = None
    if method != "GET":
        doc = data.draw(
            json_values
            | st.dictionaries(
                st.sampled_from(
                    [
                        "title",
                        "host",
                        "service",
                        "status",
                        "code",
                        "notes",
                        "text",
                        "group",
                        "assignee",
                        "incident",
                        "start",
                        "end",
                        "summary",
                        "match",
                        "workaround",
                        "resolve_incidents",
                        "priority",
                    ]
                ),
                json_values | depths,
                max_size=4,
            )
        )
        try:
            body = orjson.dumps(doc)
        except TypeError:
            body = b"[" * 2000
    a = daemon.request(
        method, f"{path}?{query}" if query else path, body, {"Content-Type": "application/json"}
    )
    assert_answer(a)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("DELETE", "/api/v1/events", 405),
        ("PUT", "/api/v1/incidents", 405),
        ("GET", "/api/v1/webhooks/am", 405),
    ],
)
def test_unknown_routes_and_methods_are_json(daemon, method, path, status):
    a = daemon.request(method, path)
    assert a.status == status
    assert_answer(a)


def test_too_large_bodies_are_413_json(daemon):
    big = b"[" + b",".join([orjson.dumps(good_event(1))] * 20000) + b"]"
    assert len(big) > 1 << 20
    for path in ["/api/v1/events", "/api/v1/webhooks/am", "/api/v1/incidents", "/api/v1/changes"]:
        a = daemon.request("POST", path, big, {"Content-Type": "application/json"})
        assert a.status == 413, (path, a.status)
        assert_answer(a)


@pytest.mark.parametrize("depth", [40, 253, 300, 1022, 1030])
@pytest.mark.parametrize("path", ["/api/v1/known-errors", "/api/v1/incidents", "/api/v1/changes"])
def test_deep_api_bodies_are_4xx_json(daemon, path, depth):
    inner = b"[" * depth + b"]" * depth
    body = b'{"title":"t","match":{"x":' + inner + b'},"host":"h"}'
    a = daemon.request("POST", path, body, {"Content-Type": "application/json"})
    assert_answer(a)
    assert 400 <= a.status < 500


def test_nul_in_api_text_fields_is_400(daemon):
    a = daemon.request(
        "POST", "/api/v1/incidents", b'{"title":"a\\u0000b"}', {"Content-Type": "application/json"}
    )
    assert a.status == 400 and a.json()["field"] == "title"
