"""/api/v1/incidents: create, list with filters and paging, show with timeline, actions, 409, 400, 404."""

from __future__ import annotations

from tests.unit.api.conftest import T0, bearer
from tests.unit.incidents.conftest import request
from tests.unit.incidents.test_commits import Faulty

ADMIN = bearer("admin")
OP = bearer("operator")
VIEW = bearer("viewer")


async def create(api, **fields) -> dict:
    r = await api.post("/api/v1/incidents", json={"title": "t", **fields}, headers=ADMIN)
    assert r.status == 201, await r.text()
    return (await r.json())["incident"]


async def act(api, ident: str, action: str, body=None, headers=OP):
    r = await api.post(f"/api/v1/incidents/{ident}/{action}", json=body or {}, headers=headers)
    return r.status, await r.json()


async def test_create_and_show(api):
    inc = await create(api, title="Core router down", host="core-r1", service="backbone", impact=1, urgency=1)
    assert inc["id"] == "INC-000001"
    assert (inc["priority"], inc["status"], inc["major"]) == ("P1", "new", True)
    assert inc["opened_at"] == "2027-01-15T08:00:00Z"
    r = await api.get("/api/v1/incidents/INC-000001", headers=VIEW)
    doc = await r.json()
    assert doc["incident"]["host"] == "core-r1"
    assert doc["timeline"][0]["action"] == "open"
    r = await api.post("/api/v1/incidents", json={"title": "dup", "key": "k1"}, headers=ADMIN)
    assert r.status == 201 and r.headers["Location"] == "/api/v1/incidents/INC-000002"
    r = await api.post("/api/v1/incidents", json={"title": "dup", "key": "k1"}, headers=ADMIN)
    assert r.status == 409


async def test_lifecycle_over_http_with_409_on_illegal_transitions(api, clock):
    await create(api)
    clock.advance_to(T0 + 120)
    assert (await act(api, "1", "ack"))[0] == 200
    status, doc = await act(api, "1", "ack")
    assert status == 409 and "INC-000001 is acknowledged: cannot ack" in doc["error"]
    status, doc = await act(api, "1", "status", {"status": "on_hold", "note": "waiting for carrier"})
    assert status == 200 and doc["incident"]["status"] == "on_hold"
    status, doc = await act(api, "1", "assign", {"group": "transport", "assignee": "dana"})
    assert doc["incident"]["assignment_group"] == "transport"
    assert (await act(api, "1", "close", headers=ADMIN))[0] == 409  # not resolved yet
    status, doc = await act(api, "1", "resolve", {"code": "carrier_fixed", "notes": "fibre spliced"})
    assert status == 200 and doc["incident"]["resolution_code"] == "carrier_fixed"
    assert (await act(api, "1", "resolve"))[0] == 409
    assert (await act(api, "1", "reopen", {"reason": "flapping"}, ADMIN))[1]["incident"]["status"] == "new"
    await act(api, "1", "resolve", {"code": "fixed"})
    status, doc = await act(api, "1", "close", headers=ADMIN)
    assert status == 200 and doc["incident"]["closed_at"] == "2027-01-15T08:02:00Z"
    assert (await act(api, "1", "reopen", headers=ADMIN))[0] == 409
    assert (await act(api, "1", "assign", {"group": "x"}))[0] == 409
    assert (await act(api, "1", "comment", {"text": "RFO sent"}))[0] == 200
    doc = await (await api.get("/api/v1/incidents/1", headers=VIEW)).json()
    actions = [(e["actor"], e["action"]) for e in doc["timeline"]]
    assert actions == [
        ("admin-token", "open"),
        ("operator-token", "ack"),
        ("operator-token", "status"),
        ("operator-token", "assign"),
        ("operator-token", "resolve"),
        ("admin-token", "reopen"),
        ("operator-token", "resolve"),
        ("admin-token", "close"),
        ("operator-token", "comment"),
    ]
    assert all(e["at"].startswith("2027-01-15T08:0") for e in doc["timeline"])


async def test_edit_links_problem_and_change_and_reprioritises(api):
    await create(api, impact=3, urgency=3)
    r = await api.patch(
        "/api/v1/incidents/1",
        json={"impact": 2, "urgency": 1, "problem_id": "PRB-7", "change_id": None},
        headers=ADMIN,
    )
    doc = (await r.json())["incident"]
    assert (doc["priority"], doc["problem_id"], doc["change_id"]) == ("P2", "PRB-7", None)


async def test_bad_input_is_400_with_the_field(api):
    await create(api)
    cases = [
        ("/api/v1/incidents", {"title": ""}, "title"),
        ("/api/v1/incidents", {"title": "x", "impact": 4}, "impact"),
        ("/api/v1/incidents", {"title": "x", "severity": "major"}, "severity"),
        ("/api/v1/incidents", {"title": "x", "major": "yes"}, "major"),
        ("/api/v1/incidents/1/status", {"status": "resolved"}, "status"),
        ("/api/v1/incidents/1/comment", {}, "text"),
        ("/api/v1/incidents/1/assign", {}, ""),
    ]
    for path, body, field in cases:
        r = await api.post(path, json=body, headers=ADMIN)
        assert r.status == 400, (path, body)
        assert (await r.json())["field"] == field, (path, body)
    r = await api.post("/api/v1/incidents", data=b"{not json", headers=ADMIN)
    assert r.status == 400 and "malformed JSON" in (await r.json())["error"]
    r = await api.get("/api/v1/incidents?priority=P9", headers=VIEW)
    assert r.status == 400 and (await r.json())["field"] == "priority"
    r = await api.get("/api/v1/incidents?colour=red", headers=VIEW)
    assert r.status == 400


async def test_impact_and_urgency_must_be_whole_numbers_not_floats_or_booleans(api):
    await create(api, impact=3, urgency=3)
    for value in (1.0, 2.0, True, False, "1"):
        for field in ("impact", "urgency"):
            r = await api.post("/api/v1/incidents", json={"title": "x", field: value}, headers=ADMIN)
            assert r.status == 400, (field, value)
            assert (await r.json()) == {"error": f"{field}: must be 1 (high), 2 or 3 (low)", "field": field}
            r = await api.patch("/api/v1/incidents/1", json={field: value}, headers=ADMIN)
            assert r.status == 400, (field, value)
            assert (await r.json())["field"] == field
    doc = await (await api.get("/api/v1/incidents/1", headers=VIEW)).json()
    assert (doc["incident"]["impact"], doc["incident"]["urgency"], doc["incident"]["priority"]) == (
        3,
        3,
        "P5",
    )
    assert [e["action"] for e in doc["timeline"]] == ["open"]
    assert (await api.get("/api/v1/incidents/2", headers=VIEW)).status == 404


async def test_unknown_incident_is_404(api):
    assert (await api.get("/api/v1/incidents/INC-000404", headers=VIEW)).status == 404
    assert (await api.get("/api/v1/incidents/garbage", headers=VIEW)).status == 404
    assert (await act(api, "77", "ack"))[0] == 404


async def test_list_filters_and_paging(api, clock):
    for i in range(7):
        clock.advance_to(T0 + i * 60)
        await create(
            api,
            title=f"i{i}",
            host=f"h{i % 2}",
            service="dns" if i < 3 else "web",
            impact=1 + i % 3,
            urgency=1,
        )
    await act(api, "2", "ack")

    async def ids(query: str) -> list[str]:
        r = await api.get(f"/api/v1/incidents?{query}", headers=VIEW)
        assert r.status == 200, await r.text()
        return [i["id"][-1] for i in (await r.json())["incidents"]]

    assert await ids("") == list("7654321")
    assert await ids("host=h0") == list("7531")
    assert await ids("service=dns&status=new") == list("31")
    assert await ids("status=acknowledged") == ["2"]
    assert await ids("priority=P1,P2") == list("75421")
    assert await ids("major=true") == list("741")
    assert await ids("since=2027-01-15T08:04:00Z") == list("765")
    assert await ids(f"since={T0 + 300:.0f}") == list("76")
    r = await api.get("/api/v1/incidents?limit=3", headers=VIEW)
    page = await r.json()
    assert [i["id"] for i in page["incidents"]] == ["INC-000007", "INC-000006", "INC-000005"]
    assert await ids(f"limit=3&cursor={page['next_cursor']}") == list("432")


async def test_annotations_are_read_once_the_incident_commits_in_flight_are_stored(api, clock):
    svc = api.svc
    store = Faulty(svc.store)
    svc.store = store
    store.gate.clear()
    await svc.apply([request("open", T0, key="a")])  # as the pipeline does: its commit not waited for
    clock.advance_to(T0 + 60)
    caught_up = svc.caught_up

    async def opening_the_gate() -> None:  # the commit can finish only once a read waits for it
        store.gate.set()
        await caught_up()

    svc.caught_up = opening_the_gate
    r = await api.get("/api/v1/annotations", headers=VIEW)
    assert r.status == 200
    assert [row["title"] for row in await r.json()] == ["INC-000001 P2: IF-MIB::linkDown on core-sw1"]


def _refused(route: str, status: int) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "correlator_http_refused_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


async def test_every_refusal_of_the_records_api_is_counted_by_route_pattern(api):
    """Bad input gets a 4xx and is counted: a bad field, an unknown record, a refused transition."""
    counted = [
        ("/api/v1/incidents", 400),
        ("/api/v1/incidents/{id}/ack", 409),
        ("/api/v1/incidents/{id}/ack", 404),
        ("/api/v1/incidents/{id}/status", 400),
    ]
    before = {key: _refused(*key) for key in counted}
    r = await api.post("/api/v1/incidents", json={"title": "t", "impact": 7}, headers=ADMIN)
    assert r.status == 400
    await create(api)
    assert (await act(api, "1", "ack"))[0] == 200
    assert (await act(api, "1", "ack"))[0] == 409
    assert (await act(api, "99", "ack"))[0] == 404
    assert (await act(api, "1", "status", {"status": "nonsense"}))[0] == 400
    assert {key: _refused(*key) - before[key] for key in counted} == dict.fromkeys(counted, 1)
    r = await api.get("/api/v1/no-such-thing", headers=VIEW)
    assert r.status == 404 and _refused("unmatched", 404) >= 1
