"""Property-based fuzzing of the dead-letter API: any dead letter (raw text from any writer), any
id, query and body; never a 5xx, every error in the JSON format, and a retry queues only what
passes the door (the journal is read back and checked at the end)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.deadletter import REASONS, DeadLetter
from tests.support.inprocess import InProcessDaemon
from tests.unit.api.conftest import bearer, token_config
from tests.unit.collectors import test_ingest_fuzz as ingest_fuzz
from tests.unit.core import test_readback_fuzz as readback_fuzz

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ADMIN = bearer("admin")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDaemon]:
    d = InProcessDaemon(Path(tmp_path_factory.mktemp("dlfuzz")))
    d.start({}, token_config())
    yield d
    d.journal_events()  # whatever a retry queued reads back and passes the door (else this raises)
    assert d.request("GET", "/healthz").status == 200
    assert d.request("GET", "/metrics").status == 200
    d.stop()


def set_aside(d: InProcessDaemon, raw: str) -> int:
    async def add() -> int:
        now = time.time()
        await d.events.add_dead_letters([DeadLetter("store_rejected", "webhook:generic", "", "x", raw, now)])
        return (await d.events.dead_letters(1, None, None)).items[0].id

    return d.run(add())


raws = st.one_of(
    readback_fuzz.docs.map(lambda doc: json.dumps(doc, default=str)),  # NaN, escaped surrogates, ...
    readback_fuzz.mutated.map(lambda doc: json.dumps(doc, default=str)[:-3]),  # cut
    ingest_fuzz.texts,
)
bodies = st.none() | st.binary(max_size=64) | ingest_fuzz.json_values.map(lambda v: orjson.dumps(v))


@FUZZ
@given(raw=raws, body=bodies)
def test_retrying_any_dead_letter_is_202_or_a_json_409_never_5xx(daemon, raw, body):
    id_ = set_aside(daemon, raw)
    a = daemon.request("POST", f"/api/v1/dead-letters/{id_}/retry", body, ADMIN)
    ingest_fuzz.assert_answer(a)
    assert a.status in (202, 409), (a.status, a.body[:300])
    if a.status == 409:  # refused: still listed, so an admin can read why and delete it
        assert daemon.request("GET", f"/api/v1/dead-letters/{id_}", None, ADMIN).status == 200
        ingest_fuzz.assert_answer(daemon.request("DELETE", f"/api/v1/dead-letters/{id_}", None, ADMIN))


ids = st.sampled_from(["1", "0", "-1", "99999999999999999999999", "²", "%00", "1e3", "x" * 300, " 1"])
queries = st.dictionaries(
    st.sampled_from(["reason", "limit", "cursor", "bogus"]),
    st.sampled_from([*REASONS, "", "nope", "0", "1", "501", "-1", "nan", "²", "%00", "1e400"]),
    max_size=3,
)


@FUZZ
@given(
    route=st.sampled_from(["GET list", "GET one", "DELETE one", "POST retry"]),
    id_=ids,
    query=queries,
    body=bodies,
    role=st.sampled_from(["viewer", "operator", "admin", None]),
)
def test_every_dead_letter_route_answers_json_and_never_5xx(daemon, route, id_, query, body, role):
    method, what = route.split()
    path = "/api/v1/dead-letters"
    if what != "list":
        path += "/" + quote(id_, safe="%") + ("/retry" if what == "retry" else "")
    qs = "&".join(f"{k}={quote(v, safe='%')}" for k, v in query.items())
    a = daemon.request(method, f"{path}?{qs}" if qs else path, body, bearer(role) if role else {})
    ingest_fuzz.assert_answer(a)
