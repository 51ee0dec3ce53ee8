"""Property-based fuzzing of every request body the daemon takes: each POST, PATCH and PUT route of
its OpenAPI document, with a token of the route's role, gets bytes that are not JSON, invalid UTF-8,
numbers of thousands of digits, deep nesting, JSON of the wrong shape, and its own documented fields
with hostile values. Properties: never a 5xx; every error answer in the documented JSON format (or
the HTML page a console route documents for that status); on a route that documents a body, one
that is not JSON is a 4xx; and the daemon stays healthy. One daemon as `correlator run` assembles it (daemon.build) serves the module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator import daemon
from correlator.api.connections import LIMITS, LimitedRunner
from correlator.config import load_config
from correlator.deadletter import DeadLetter
from tests.support.inprocess import Answer, InProcessDaemon
from tests.unit.api.conftest import bearer, token_config
from tests.unit.api.route_roles import ROUTE_ROLES
from tests.unit.collectors import test_ingest_fuzz as ingest_fuzz
from tests.unit.collectors.test_ingest_fuzz import assert_answer, deep, json_values, texts

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WRITES = ("POST", "PATCH", "PUT")
TAKES_BODY: set[tuple[str, str]] = set()  # the routes whose operation documents a request body
FIELDS: dict[tuple[str, str], list[str]] = {}  # per route, the fields of its documented body
PAGES: dict[tuple[str, str], set[int]] = {}  # per route, the statuses documented without a JSON body


class BuiltDaemon(InProcessDaemon):
    """The application daemon.build assembles (every collector route and the rules API included),
    served from InProcessDaemon's background loop; the pipeline does not run."""

    async def _start(self, webhook: Any, tokens: Any) -> None:
        config = load_config(
            None,
            {
                "storage.data_dir": str(self.tmp / "var"),
                "http.tokens": dict(tokens),
                "collectors": {"webhook": dict(webhook), "snmp": {}},
            },
        )
        self.built = await daemon.build(config)
        self._runner = LimitedRunner(self.built.app, self.built.app[LIMITS], access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self.built.incidents.close()
            await self.built.changes.store.close()
            await self.built.queue.close()
            await self.built.store.close()
            self.built.lock.release()

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def create(d: BuiltDaemon, path: str, doc: dict[str, Any]) -> None:
    a = d.request("POST", path, orjson.dumps(doc), {**bearer("admin"), "Content-Type": "application/json"})
    assert a.status == 201, (path, a.status, a.body[:300])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuiltDaemon, list[tuple[str, str]]]]:
    d = BuiltDaemon(Path(tmp_path_factory.mktemp("bodyfuzz")))
    d.start({"sources": ingest_fuzz.WEBHOOK["sources"]}, token_config())
    # One record of each kind, so that a route naming id 1 reaches the reading of its body.
    create(d, "/api/v1/incidents", {"title": "fuzz target", "host": "core-sw1"})
    window = {"start": "2027-01-15T09:00:00Z", "end": "2027-01-15T11:00:00Z"}
    create(d, "/api/v1/changes", {"title": "fuzz target", "cis": ["core-sw1"], **window})
    create(d, "/api/v1/problems", {"title": "fuzz target", "incidents": ["INC-000001"]})
    create(
        d,
        "/api/v1/known-errors",
        {"title": "fuzz target", "problem_id": "PRB-000001", "match": {"host": "x"}, "workaround": "w"},
    )
    letter = DeadLetter("store_rejected", "webhook:generic", "e1", "x", '{"id": "e1"}', time.time())
    d.run(d.built.store.add_dead_letters([letter]))
    doc = d.request("GET", "/api/v1/openapi.json").json()
    writes = sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m.upper() in WRITES)
    for p, ops in doc["paths"].items():
        for m, op in ops.items():
            if "requestBody" in op:
                TAKES_BODY.add((m.upper(), p))
                FIELDS[m.upper(), p] = sorted(_properties(op["requestBody"], doc))
            PAGES[m.upper(), p] = {int(c) for c, r in op["responses"].items() if "content" not in r}
    yield d, writes
    assert d.request("GET", "/healthz").status == 200
    assert d.request("GET", "/metrics").status == 200
    d.stop()


def test_every_write_route_of_the_document_is_fuzzed(served):
    _, writes = served
    assert set(writes) == {k for k in ROUTE_ROLES if k[0] in WRITES}


# -- generators ---------------------------------------------------------------------------------

PATH_VALUES = st.sampled_from(
    ["1", "INC-000001", "CHG-000001", "PRB-000001", "KE-000001", "2", "0", "am", "generic", "ack",
     "%00", "%C3%28", "%ED%A0%80", "x" * 300, "9" * 5000, "-1", "1e3"]
)  # fmt: skip
# What names an existing record (created by the fixture), a configured source, a console action.
EXISTING = {
    "id": ["1"],
    "source": sorted(ingest_fuzz.WEBHOOK["sources"]),
    "action": ["ack", "comment", "assign"],
}
BIG = st.integers(min_value=4_000, max_value=50_000)
not_json = st.one_of(
    st.binary(max_size=200).filter(lambda b: not _parses(b)),
    st.binary(min_size=1, max_size=40).map(lambda b: b'{"title": "' + b"\xff\xfe" + b + b'"}'),  # not UTF-8
    st.binary(max_size=40).map(lambda b: b'{"title": "\xed\xa0\x80' + b + b'"}'),  # an encoded surrogate
    BIG.map(lambda n: b"[" * n),  # cut deep nesting
    st.just(b""),
)
hostile_json = st.one_of(
    BIG.map(lambda n: b"9" * n),  # a number of more digits than int() takes
    BIG.map(lambda n: b'{"title": "t", "impact": ' + b"9" * n + b"}"),
    BIG.map(lambda n: b'{"note": -' + b"9" * n + b"}"),
    st.sampled_from([b"1e999", b'{"impact": 1e999}', b'{"start": -1e308, "end": 1e308}', b"NaN"]),
    BIG.map(lambda n: b"[" * n + b"]" * n),  # deeper than orjson parses
    BIG.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(min_value=1, max_value=240).map(lambda n: orjson.dumps(deep(n))),
    json_values.map(orjson.dumps),
    st.dictionaries(
        st.sampled_from(["title", "host", "note", "status", "group", "assignee", "incidents", "start", "end",
                         "cis", "impact", "urgency", "match", "problem", "text", "severity", "type"]) | texts,
        json_values | st.integers(min_value=-(2**63), max_value=2**64 - 1),
        max_size=5,
    ).map(orjson.dumps),
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=latin-1", "text/plain", "application/x-ndjson",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)  # fmt: skip


# Raw JSON text of values a field should refuse (orjson cannot write some of them: text here).
hostile_values = st.one_of(
    BIG.map(lambda n: "9" * n),
    BIG.map(lambda n: "-" + "9" * n),
    st.integers(min_value=20, max_value=400).map(lambda n: f"1e{n}"),
    st.sampled_from(["1e999", "-1e999", "-0.0", "0.1e-400", "true", "null", "{}", "[]", '""']),
    st.sampled_from(['"\\u0000"', '"\\ud800"', '"\\udfff x"', '"a\\u0000b"', '"9999-12-31T23:59:59+14:00"']),
    st.sampled_from(['"0001-01-01T00:00:00-14:00"', '"INC-' + "9" * 40 + '"', '["INC-000001", 1e999]']),
    st.integers(min_value=1, max_value=5_000).map(lambda n: '"' + "é" * n + '"'),
    BIG.map(lambda n: "[" * n + "]" * n),
    json_values.map(lambda v: orjson.dumps(v).decode()),
)


def shaped(route: tuple[str, str]) -> st.SearchStrategy[bytes]:
    """An object of the route's own field names, each with a hostile value."""
    names = FIELDS.get(route) or ["title"]
    pairs = st.dictionaries(st.sampled_from(names), hostile_values, min_size=1, max_size=4)
    return pairs.map(lambda d: ("{" + ",".join(f'"{k}": {v}' for k, v in d.items()) + "}").encode())


def _properties(body: dict[str, Any], doc: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for media in body["content"].values():
        for schema in [media["schema"], *media["schema"].get("oneOf", [])]:
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            names.update(schema.get("properties", {}))
    return names


def _parses(b: bytes) -> bool:
    try:
        orjson.loads(b)
    except orjson.JSONDecodeError:
        return False
    return True


def assert_documented(method: str, template: str, a: Answer) -> None:
    """Never a 5xx; an error is the JSON format unless the route documents that status as a page
    (the console's errors for people are HTML: docs/console.md)."""
    page = a.headers.get("Content-Type", "").startswith("text/html")
    if not (page and a.status in PAGES[method, template]):
        assert_answer(a)


def send(d: BuiltDaemon, method: str, template: str, data: st.DataObject, body: bytes) -> Answer:
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        name = path[start + 1 : end]
        path = path[:start] + data.draw(st.sampled_from(EXISTING[name]) | PATH_VALUES) + path[end + 1 :]
    role = ROUTE_ROLES[method, template]
    headers: dict[str, str] = {} if role in (None, "webhook", "console") else bearer(role)
    content_type = data.draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return d.request(method, path, body, headers)


@FUZZ
@given(data=st.data(), body=not_json)
def test_a_body_that_is_not_json_is_a_json_4xx_on_every_write_route(served, data, body):
    d, writes = served
    method, template = data.draw(st.sampled_from(writes))
    a = send(d, method, template, data, body)
    assert_documented(method, template, a)
    # A route that takes none may ignore it; one whose body is optional takes whitespace as none.
    if body.strip() and (method, template) in TAKES_BODY:
        assert 400 <= a.status < 500, (method, template, a.status, a.body[:300])


@FUZZ
@given(data=st.data(), body=hostile_json)
def test_hostile_json_never_answers_5xx_on_any_write_route(served, data, body):
    d, writes = served
    method, template = data.draw(st.sampled_from(writes))
    assert_documented(method, template, send(d, method, template, data, body))


@FUZZ
@given(data=st.data())
def test_each_field_of_each_body_refuses_hostile_values_in_json(served, data):
    d, _ = served
    route = data.draw(st.sampled_from(sorted(TAKES_BODY)))
    assert_documented(*route, send(d, *route, data, data.draw(shaped(route))))
