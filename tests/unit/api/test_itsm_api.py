"""/api/v1/changes, /problems and /known-errors in process: transitions, roles, validation, 503 on a full queue."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.common import STATE
from correlator.changes.service import EMITTED
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.deadletter import DeadLetter
from correlator.errors import QueueFull, ShuttingDown, StorageUnavailable
from correlator.event import Event
from tests.unit.api.conftest import T0, bearer, daemon_app, itsm_app, token_config

WINDOW = {"start": "2027-01-15T09:00:00Z", "end": "2027-01-15T11:00:00Z"}


class Refusing:
    """The ingest a dead-letter retry puts its event back through: it answers as `emit` does."""

    def __init__(self, emit) -> None:
        self.emit = emit


@pytest.fixture
async def itsm(tmp_path):
    emitted: list[Event] = []
    full: dict[str, Exception | None] = {"on": None}  # what the ingest queue answers, when set

    async def emit(evs: list[Event], source: str) -> None:
        if full["on"] is not None:
            raise full["on"]
        emitted.extend(evs)

    def queue_full() -> QueueFull | None:  # what the queue tells before a put: only that it is full
        return full["on"] if isinstance(full["on"], QueueFull) else None

    async with itsm_app(tmp_path, Clock(T0), ChangeSettings(), emit, Refusing(emit), queue_full) as client:
        client.emitted, client.full = emitted, full  # type: ignore[attr-defined]
        yield client


async def post(api, path: str, role: str, body=None):
    resp = (
        await api.post(path, json=body, headers=bearer(role))
        if body is not None
        else await api.post(path, headers=bearer(role))
    )
    return resp.status, await resp.json()


async def test_change_lifecycle_through_the_api_with_roles_and_audit(itsm):
    status, doc = await post(
        itsm,
        "/api/v1/changes",
        "admin",
        {"title": "IOS upgrade", "cis": ["core-sw1"], **WINDOW, "risk": "high", "implementer": "alice"},
    )
    assert status == 201 and doc["change"]["id"] == "CHG-000001" and doc["change"]["state"] == "requested"
    assert doc["change"]["start"] == "2027-01-15T09:00:00Z"
    assert (await post(itsm, "/api/v1/changes", "operator", {"title": "x", "cis": ["a"], **WINDOW}))[0] == 403
    assert (await itsm.get("/api/v1/changes")).status == 401
    assert (await post(itsm, "/api/v1/changes/CHG-000001/approve", "operator"))[0] == 403
    status, doc = await post(itsm, "/api/v1/changes/CHG-000001/start", "operator")
    assert status == 409 and "requested: cannot go to in_progress" in doc["error"]
    assert (await post(itsm, "/api/v1/changes/CHG-000001/approve", "admin", {"note": "CAB ok"}))[0] == 200
    status, doc = await post(itsm, "/api/v1/changes/1/start", "operator")
    assert status == 200 and doc["change"]["state"] == "in_progress"
    assert [e.type for e in itsm.emitted] == ["change.started"]
    assert (await post(itsm, "/api/v1/changes/1/complete", "operator"))[0] == 200
    status, doc = await post(itsm, "/api/v1/changes/1/fail", "operator")
    assert status == 409 and "no linked incident" in doc["error"]
    resp = await itsm.get("/api/v1/changes/CHG-000001", headers=bearer("viewer"))
    doc = await resp.json()
    assert [(e["actor"], e["detail"].get("to")) for e in doc["log"]] == [
        ("admin-token", None), ("admin-token", "approved"), ("operator-token", "in_progress"), ("operator-token", "completed"),
    ]  # fmt: skip
    assert doc["log"][1]["detail"]["note"] == "CAB ok"
    resp = await itsm.get("/api/v1/changes?state=completed", headers=bearer("viewer"))
    assert [c["id"] for c in (await resp.json())["changes"]] == ["CHG-000001"]
    assert (await itsm.get("/api/v1/changes/CHG-9", headers=bearer("viewer"))).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "t", "cis": ["a"], "start": "2027-01-15T11:00:00Z", "end": "2027-01-15T09:00:00Z"}, "end"),
        ({"title": "t", **WINDOW}, "cis"),
        ({"title": "t", "cis": "core-sw1", **WINDOW}, "cis"),
        ({"title": "t", "cis": ["a"], "risk": "extreme", **WINDOW}, "risk"),
        ({"title": "t", "cis": ["a"], "start": "tomorrow", "end": "2027-01-15T09:00:00Z"}, "start"),
        ({"cis": ["a"], **WINDOW}, "title"),
        ({"title": "t", "cis": ["a"], "colour": "red", **WINDOW}, "colour"),
    ],
)
async def test_invalid_change_bodies_say_which_field(itsm, body, field):
    status, doc = await post(itsm, "/api/v1/changes", "admin", body)
    assert status == 400 and doc["field"] == field


async def test_a_full_queue_answers_503_and_the_change_keeps_its_state(itsm):
    await post(itsm, "/api/v1/changes", "admin", {"title": "t", "cis": ["a"], **WINDOW})
    await post(itsm, "/api/v1/changes/1/approve", "admin")
    itsm.full["on"] = QueueFull(10, 10, 2.0)
    resp = await itsm.post("/api/v1/changes/1/start", headers=bearer("operator"))
    assert resp.status == 503 and resp.headers["Retry-After"] == "2"
    doc = await (await itsm.get("/api/v1/changes/1", headers=bearer("viewer"))).json()
    assert doc["change"]["state"] == "approved"


PUSH_BACKS = [
    (QueueFull(10, 10, 2.5), "ingestion queue full", "3"),
    (StorageUnavailable("database or disk is full", 0.2), "storage unavailable", "1"),
    (ShuttingDown("stopping"), "shutting down", "5"),
]


@pytest.mark.parametrize(("error", "words", "retry_after"), PUSH_BACKS[:2])
async def test_a_change_action_pushed_back_is_a_503_in_its_own_words(itsm, error, words, retry_after):
    await post(itsm, "/api/v1/changes", "admin", {"title": "t", "cis": ["a"], **WINDOW})
    await post(itsm, "/api/v1/changes/1/approve", "admin")
    itsm.full["on"] = error
    resp = await itsm.post("/api/v1/changes/1/start", headers=bearer("operator"))
    assert resp.status == 503 and resp.headers["Retry-After"] == retry_after
    assert (await resp.json())["error"].startswith(words)
    doc = await (await itsm.get("/api/v1/changes/1", headers=bearer("viewer"))).json()
    assert doc["change"]["state"] == "approved"


async def test_an_event_refused_after_the_save_leaves_the_change_moved_and_counts_it_lost(itsm):
    """The queue said it had room, then refused the event (the daemon began stopping): the change
    has moved and is answered so; a retry would be a 409, not the missing event."""
    await post(itsm, "/api/v1/changes", "admin", {"title": "t", "cis": ["a"], **WINDOW})
    await post(itsm, "/api/v1/changes/1/approve", "admin")
    lost = EMITTED.labels("lost")._value.get()
    itsm.full["on"] = ShuttingDown("stopping")
    status, doc = await post(itsm, "/api/v1/changes/1/start", "operator")
    assert status == 200 and doc["change"]["state"] == "in_progress"
    assert EMITTED.labels("lost")._value.get() == lost + 1 and itsm.emitted == []
    itsm.full["on"] = None
    assert (await post(itsm, "/api/v1/changes/1/complete", "operator"))[0] == 200
    assert [e.type for e in itsm.emitted] == ["change.completed"]


@pytest.mark.parametrize(("error", "words", "retry_after"), PUSH_BACKS)
async def test_a_dead_letter_retry_pushed_back_is_a_503_and_the_letter_kept(itsm, error, words, retry_after):
    ev = Event("ev-1", T0, T0, "webhook:generic", "core-sw1", "linkDown")
    raw = orjson.dumps(ev.to_dict()).decode()
    await itsm.events.add_dead_letters(
        [DeadLetter("store_rejected", "webhook:generic", "ev-1", "x", raw, T0)]
    )
    itsm.full["on"] = error
    resp = await itsm.post("/api/v1/dead-letters/1/retry", headers=bearer("admin"))
    assert resp.status == 503 and resp.headers["Retry-After"] == retry_after
    assert (await resp.json())["error"].startswith(words)
    assert (await itsm.get("/api/v1/dead-letters/1", headers=bearer("viewer"))).status == 200
    itsm.full["on"] = None
    resp = await itsm.post("/api/v1/dead-letters/1/retry", headers=bearer("admin"))
    assert resp.status == 202 and [e.id for e in itsm.emitted] == ["ev-1"]


async def test_problems_and_known_errors_through_the_api(itsm):
    inc = await itsm.incidents.create("admin-token", {"title": "db slow", "host": "db1"})
    status, doc = await post(
        itsm, "/api/v1/problems", "admin", {"title": "storage latency", "incidents": [inc.human_id]}
    )
    assert (
        status == 201
        and doc["problem"]["id"] == "PRB-000001"
        and doc["problem"]["incidents"] == ["INC-000001"]
    )
    assert (await post(itsm, "/api/v1/problems", "operator", {"title": "x"}))[0] == 403
    status, doc = await post(
        itsm,
        "/api/v1/known-errors",
        "admin",
        {"title": "SAN fw", "match": {"host": {"regex": "["}}, "workaround": "w"},
    )
    assert status == 400 and doc["field"] == "match" and doc["error"].startswith("host: invalid regex")
    status, doc = await post(
        itsm,
        "/api/v1/known-errors",
        "admin",
        {
            "title": "SAN fw",
            "match": {"host": {"glob": "db*"}},
            "workaround": "fail over",
            "problem_id": "PRB-000001",
        },
    )
    assert (
        status == 201
        and doc["known_error"]["id"] == "KE-000001"
        and doc["known_error"]["problem_id"] == "PRB-000001"
    )
    doc = await (await itsm.get("/api/v1/problems/PRB-000001", headers=bearer("viewer"))).json()
    assert doc["problem"]["state"] == "known_error" and doc["problem"]["known_error_id"] == "KE-000001"
    assert [e["action"] for e in doc["log"]] == ["open", "known_error"]
    status, doc = await post(
        itsm, "/api/v1/problems/1/resolve", "admin", {"root_cause": "fw bug", "resolve_incidents": True}
    )
    assert (
        status == 200
        and doc["resolved_incidents"] == ["INC-000001"]
        and doc["problem"]["state"] == "resolved"
    )
    assert (await post(itsm, "/api/v1/problems/1/resolve", "admin", {}))[0] == 409
    doc = await (await itsm.get("/api/v1/known-errors?state=retired", headers=bearer("viewer"))).json()
    assert [k["id"] for k in doc["known_errors"]] == ["KE-000001"]
    assert (await post(itsm, "/api/v1/known-errors/KE-000001/retire", "admin"))[0] == 409
    doc = await (await itsm.get("/api/v1/problems/trend?since=7d", headers=bearer("viewer"))).json()
    assert doc["signatures"] == []
    assert (await itsm.get("/api/v1/problems/trend?since=soon", headers=bearer("viewer"))).status == 400
    assert (await post(itsm, "/api/v1/problems/PRB-000001/link", "viewer", {"incident": "INC-000001"}))[
        0
    ] == 403


async def test_answers_match_the_documented_schemas(itsm):
    from openapi_schema_validator import OAS30Validator

    from correlator.api.changes import CHANGE
    from correlator.api.known_errors import KNOWN_ERROR
    from correlator.api.problems import PROBLEM

    await post(itsm, "/api/v1/changes", "admin", {"title": "t", "cis": ["a"], "policy": "tag", **WINDOW})
    await post(itsm, "/api/v1/problems", "admin", {"title": "p"})
    await post(
        itsm,
        "/api/v1/known-errors",
        "admin",
        {"title": "k", "match": {"host": "a"}, "workaround": "w", "problem_id": "PRB-000001"},
    )
    for path, key, schema in (
        ("/api/v1/changes/1", "change", CHANGE),
        ("/api/v1/problems/1", "problem", PROBLEM),
        ("/api/v1/known-errors/1", "known_error", KNOWN_ERROR),
    ):
        doc = await (await itsm.get(path, headers=bearer("viewer"))).json()
        OAS30Validator(schema).validate(doc[key])
        assert set(doc[key]) == set(schema["properties"]), path


async def test_an_incident_links_only_to_a_problem_and_a_change_that_exist(itsm):
    assert (await post(itsm, "/api/v1/incidents", "admin", {"title": "t"}))[0] == 201
    assert (await post(itsm, "/api/v1/problems", "admin", {"title": "p"}))[0] == 201
    status, doc = await post(itsm, "/api/v1/changes", "admin", {"title": "c", "cis": ["a"], **WINDOW})
    assert status == 201, doc

    async def patch(body):
        resp = await itsm.patch("/api/v1/incidents/1", json=body, headers=bearer("admin"))
        return resp.status, await resp.json()

    for body, field, words in [
        ({"problem_id": "PRB-000999"}, "problem_id", "no problem 'PRB-000999'"),
        ({"problem_id": "CHG-1"}, "problem_id", "expected PRB-000012 or 12"),
        ({"change_id": "42"}, "change_id", "no change '42'"),
    ]:
        status, doc = await patch(body)
        assert status == 400 and doc["field"] == field and words in doc["error"], doc
    status, doc = await patch({"problem_id": "prb-1", "change_id": "1"})
    assert status == 200
    assert (doc["incident"]["problem_id"], doc["incident"]["change_id"]) == ("PRB-000001", "CHG-000001")
    status, doc = await patch({"problem_id": None})  # unlinking needs no record
    assert status == 200 and doc["incident"]["problem_id"] is None


@pytest.mark.parametrize("path", ["/api/v1/changes", "/api/v1/problems", "/api/v1/known-errors"])
async def test_a_query_number_of_thousands_of_digits_is_400(itsm, path):
    """int() refuses past 4,300 digits with a ValueError: checked before, never a 500."""
    resp = await itsm.get(f"{path}?limit={'9' * 5000}", headers=bearer("viewer"))
    assert resp.status == 400 and (await resp.json())["field"] == "limit"


@pytest.mark.parametrize(
    "path", ["/api/v1/incidents?host=a%00b", "/api/v1/changes?state=%00", "/incidents?host=%00"]
)
async def test_a_nul_in_any_query_string_is_400_before_it_reaches_a_store(itsm, path):
    """PostgreSQL refuses U+0000 in text: a filter carrying one was a 500 there."""
    resp = await itsm.get(path, headers=bearer("viewer"))
    assert resp.status == 400 and "NUL" in (await resp.json())["error"]


async def test_a_change_start_on_a_full_journal_is_refused_before_the_save(tmp_path):
    """The daemon as assembled: its change service asks the journal for room before saving."""
    async with daemon_app(tmp_path, **{"http.tokens": token_config(), "queue.max_events": 2}) as app:
        client = TestClient(TestServer(app, host="127.0.0.1"))
        async with client:
            await post(client, "/api/v1/changes", "admin", {"title": "t", "cis": ["a"], **WINDOW})
            await post(client, "/api/v1/changes/1/approve", "admin")
            await app[STATE].queue.put(b"", 2)  # full: nothing consumes it in this test
            resp = await client.post("/api/v1/changes/1/start", headers=bearer("operator"))
            assert resp.status == 503 and resp.headers["Retry-After"]
            doc = await (await client.get("/api/v1/changes/1", headers=bearer("viewer"))).json()
            assert doc["change"]["state"] == "approved"
