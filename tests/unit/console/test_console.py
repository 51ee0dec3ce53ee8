"""The web console in process: sign-in and its cookie, CSRF on every POST, the API's roles, the
security headers, escaping, filters, and the changes, problems and services pages."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.api.app import make_app
from correlator.api.auth import parse_tokens
from correlator.api.common import AppState
from correlator.changes.calendar import load_calendar
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.console import views
from correlator.console.render import duration, percent
from correlator.console.session import COOKIE, IDLE, LIFETIME, Sessions
from correlator.console.views import incident_view
from correlator.event import Severity
from correlator.incidents.model import Incident, LogEntry, Status
from tests.unit.api.conftest import T0, TOKENS, bearer, clock, itsm_app, open_api, token_config
from tests.unit.availability.test_state import HOUR, ev, feed, make_stage, samples, value

__all__ = ["clock", "open_api"]  # fixtures shared with the API tests

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def console(tmp_path: Path):
    """The API app with incidents, changes (a weekly calendar window) and problems, three tokens."""
    cal = tmp_path / "calendar.yaml"
    cal.write_text(
        "windows:\n  - name: dc-patching\n    title: DC patching\n    days: [tue]\n"
        "    start: '22:00'\n    end: '23:30'\n    cis: [dc-sw1]\n"
    )

    async def emit(evs, source):  # change events go nowhere here
        return None

    settings = ChangeSettings(calendar=load_calendar(cal))
    async with itsm_app(tmp_path, Clock(T0), settings, emit) as client:  # 2027-01-15T08:00:00Z, a Friday
        yield client


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert m, page
    return m.group(1)


async def sign_in(client: TestClient, role: str) -> None:
    client.session.cookie_jar.clear()
    page = await (await client.get("/signin")).text()
    r = await client.post(
        "/signin",
        data={"csrf": csrf_of(page), "token": TOKENS[role], "next": "/incidents"},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/incidents", await r.text()


async def new_incident(client: TestClient, **fields) -> str:
    return await new_record(client, "incidents", **{"title": "Core down", **fields})


async def new_record(client: TestClient, kind: str, **fields) -> str:
    r = await client.post(f"/api/v1/{kind}", json=fields, headers=bearer("admin"))
    assert r.status == 201, await r.text()
    doc = await r.json()
    return str(next(iter(doc.values()))["id"])


async def test_sign_in_sets_a_fresh_httponly_strict_cookie_without_the_token(console):
    r = await console.get("/incidents", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/signin?next=%2Fincidents"
    r = await console.get("/signin")
    nonce = r.cookies[COOKIE].value
    csrf = csrf_of(await r.text())
    r = await console.post("/signin", data={"csrf": csrf, "token": TOKENS["operator"]}, allow_redirects=False)
    assert r.status == 303
    cookie = r.cookies[COOKIE]
    assert cookie.value != nonce and TOKENS["operator"] not in cookie.value
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; over TLS the cookie is Secure (request.secure)
    page = await (await console.get("/incidents")).text()
    assert "operator-token" in page and "(operator)" in page


async def test_wrong_token_and_a_forged_sign_in_are_refused(console):
    page = await (await console.get("/signin")).text()
    r = await console.post("/signin", data={"csrf": csrf_of(page), "token": "guess"}, allow_redirects=False)
    assert r.status == 401 and "Unknown token" in await r.text()
    r = await console.post("/signin", data={"token": TOKENS["admin"]}, allow_redirects=False)
    assert r.status == 403
    r = await console.post(
        "/signin", data={"csrf": "0" * 64, "token": TOKENS["admin"]}, allow_redirects=False
    )
    assert r.status == 403
    assert (await console.get("/incidents", allow_redirects=False)).status == 303  # still signed out


async def test_next_never_leaves_the_site(console):
    page = await (await console.get("/signin?next=//evil.example/x")).text()
    assert 'name="next" value="/incidents"' in page


async def test_pages_carry_the_security_headers(console):
    await sign_in(console, "viewer")
    for path in ("/incidents", "/changes", "/problems", "/services", "/wall", "/signin"):
        r = await console.get(path)
        assert r.status == 200, path
        h = r.headers
        assert (
            "script-src 'self'" in h["Content-Security-Policy"]
            and "'unsafe-inline'" not in h["Content-Security-Policy"]
        )
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] == "DENY" and h["Cache-Control"] == "no-store"
        assert "<script>" not in await r.text()  # no inline script: the CSP would block it anyway
    assert (await console.get("/static/console.js")).status == 200


async def test_operator_acknowledges_with_csrf_and_forged_posts_are_refused(console):
    ident = await new_incident(console)
    await sign_in(console, "operator")
    page = await (await console.get(f"/incidents/{ident}")).text()
    assert 'id="do-ack"' in page and 'id="do-close"' not in page  # close is admin's
    csrf = csrf_of(page)
    for forged in ({}, {"csrf": "f" * 64}, {"csrf": ""}):
        r = await console.post(f"/incidents/{ident}/ack", data=forged, allow_redirects=False)
        assert r.status == 403
    r = await console.post(f"/incidents/{ident}/ack", json={"csrf": csrf}, allow_redirects=False)
    assert r.status == 415  # only the console's own form encoding
    inc, _ = await console.incidents.get(1)
    assert inc.status.value == "new"
    r = await console.post(
        f"/incidents/{ident}/ack", data={"csrf": csrf, "note": "on it"}, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == f"/incidents/{ident}#timeline"
    page = await (await console.get(f"/incidents/{ident}")).text()
    assert '<dd id="status">acknowledged</dd>' in page
    assert re.search(r"<strong>ack</strong> by operator-token", page) and "note=on it" in page
    # The state machine answers as for the API: acknowledging twice is a 409, shown on the page.
    r = await console.post(f"/incidents/{ident}/ack", data={"csrf": csrf})
    assert r.status == 409 and "cannot" in await r.text()
    # An operator cannot close, even with a good CSRF token: the role of the API route decides.
    r = await console.post(f"/incidents/{ident}/close", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 403


async def test_csrf_token_of_one_session_is_worthless_in_another(console):
    ident = await new_incident(console)
    await sign_in(console, "operator")
    stolen = csrf_of(await (await console.get(f"/incidents/{ident}")).text())
    await sign_in(console, "admin")
    r = await console.post(f"/incidents/{ident}/ack", data={"csrf": stolen}, allow_redirects=False)
    assert r.status == 403


async def test_viewer_sees_no_action_and_cannot_post_one(console):
    ident = await new_incident(console)
    await sign_in(console, "viewer")
    page = await (await console.get(f"/incidents/{ident}")).text()
    assert 'id="actions"' not in page and "do-" not in page
    csrf = csrf_of(page)  # the sign-out form's token: a valid one
    r = await console.post(f"/incidents/{ident}/ack", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 403 and "viewer" in await r.text()
    r = await console.post(
        f"/incidents/{ident}/comment", data={"csrf": csrf, "text": "x"}, allow_redirects=False
    )
    assert r.status == 403


async def test_admin_works_an_incident_through_every_action(console):
    ident = await new_incident(console)
    await sign_in(console, "admin")
    csrf = csrf_of(await (await console.get(f"/incidents/{ident}")).text())
    steps = [
        ("assign", {"group": "network", "assignee": ""}),
        ("comment", {"text": "looking"}),
        ("status", {"status": "in_progress"}),
        ("resolve", {"code": "fixed", "notes": "replaced optic"}),
        ("reopen", {"reason": "back again"}),
        ("resolve", {}),
        ("close", {}),
    ]
    for action, fields in steps:
        r = await console.post(
            f"/incidents/{ident}/{action}", data={"csrf": csrf, **fields}, allow_redirects=False
        )
        assert r.status == 303, (action, await r.text())
    inc, timeline = await console.incidents.get(1)
    assert inc.status.value == "closed" and inc.assignment_group == "network"
    assert {e.actor for e in timeline if e.action != "open"} == {"admin-token"}
    page = await (await console.get(f"/incidents/{ident}")).text()
    assert 'id="do-' not in page.replace('id="do-comment"', "")  # closed: only a comment is left


async def test_bad_form_input_is_a_400_naming_the_field(console):
    ident = await new_incident(console)
    await sign_in(console, "operator")
    csrf = csrf_of(await (await console.get(f"/incidents/{ident}")).text())
    r = await console.post(f"/incidents/{ident}/status", data={"csrf": csrf, "status": "closed"})
    assert r.status == 400 and "status" in await r.text()
    r = await console.post(f"/incidents/{ident}/comment", data={"csrf": csrf, "text": "x" * 20000})
    assert r.status == 400
    r = await console.post(f"/incidents/{ident}/ack", data={"csrf": csrf, "colour": "red"})
    assert r.status == 400 and "colour" in await r.text()
    r = await console.post(f"/incidents/{ident}/explode", data={"csrf": csrf})
    assert r.status == 404 and (await r.json())["error"]
    assert (await console.get("/incidents?status=bogus")).status == 400
    assert (await console.get("/incidents/INC-999999")).status == 404


async def test_list_filters_counts_and_major_first_with_escaped_text(console):
    await new_incident(console, title="minor thing", host="a1", impact=3, urgency=3)
    await new_incident(console, title="<script>alert(1)</script>", host="core-r1", impact=1, urgency=1)
    await new_incident(console, title="edge flap", host="edge-1", service="web", impact=2, urgency=2)
    r = await console.post(
        "/api/v1/incidents/INC-000003/assign", json={"group": "network"}, headers=bearer("operator")
    )
    assert r.status == 200
    await sign_in(console, "viewer")
    page = await (await console.get("/incidents")).text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    ids = re.findall(r'data-id="(INC-\d+)"', page)
    assert ids[0] == "INC-000002"  # the major P1 first
    assert re.search(r'id="count-P1">1<', page) and re.search(r'id="count-P5">1<', page)
    rows = await (await console.get("/incidents/rows?group=network")).text()
    assert re.findall(r'data-id="(INC-\d+)"', rows) == ["INC-000003"]
    rows = await (await console.get("/incidents/rows?service=web&priority=P3")).text()
    assert re.findall(r'data-id="(INC-\d+)"', rows) == ["INC-000003"]
    rows = await (await console.get("/incidents/rows?status=resolved")).text()
    assert "No incident matches" in rows
    wall = await (await console.get("/wall/rows")).text()
    assert "Open incidents: 3" in wall and "&lt;script&gt;" in wall


async def test_the_group_filter_finds_matching_incidents_beyond_the_newest_page(console, monkeypatch):
    monkeypatch.setattr(views, "LIST_LIMIT", 3)
    for n in range(6):  # the network group's incidents are the oldest two
        ident = await new_incident(console, title=f"incident {n}", host=f"h{n}")
        if n < 2:
            r = await console.post(
                f"/api/v1/incidents/{ident}/assign", json={"group": "network"}, headers=bearer("operator")
            )
            assert r.status == 200
    await sign_in(console, "viewer")
    rows = await (await console.get("/incidents/rows?group=network")).text()
    assert sorted(re.findall(r'data-id="(INC-\d+)"', rows)) == ["INC-000001", "INC-000002"]
    rows = await (await console.get("/incidents/rows?group=nobody")).text()
    assert "No incident matches" in rows


async def test_live_fragment_without_session_is_401_not_a_redirect(console):
    r = await console.get("/incidents/rows", allow_redirects=False)
    assert r.status == 401


async def test_changes_calendar_expands_the_recurring_window_and_shows_records(console):
    await new_record(
        console,
        "changes",
        title="IOS upgrade",
        cis=["core-sw1"],
        start="2027-01-16T09:00:00Z",
        end="2027-01-16T11:00:00Z",
    )
    await sign_in(console, "viewer")
    page = await (await console.get("/changes")).text()
    assert "IOS upgrade" in page and "requested" in page and 'id="CHG-000001"' in page
    # DC patching every Tuesday 22:00 (UTC: the window has no tz): two Tuesdays within 14 days.
    assert page.count("DC patching") == 2 and "2027-01-19 Tuesday" in page and "2027-01-26 Tuesday" in page


async def test_problems_and_services_pages(console):
    await new_record(
        console, "known-errors", title="Flapping optic", match={"host": "edge-1"}, workaround="reseat the SFP"
    )
    await sign_in(console, "viewer")
    page = await (await console.get("/problems")).text()
    assert "Flapping optic" in page and "reseat the SFP" in page
    page = await (await console.get("/services")).text()
    assert "No services file is configured" in page


async def test_sign_out_ends_the_session(console):
    await sign_in(console, "viewer")
    page = await (await console.get("/incidents")).text()
    r = await console.post("/signout", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/signin"
    assert (await console.get("/incidents", allow_redirects=False)).status == 303


async def test_open_api_means_an_open_console_still_guarded_by_csrf(open_api):
    ident = await new_incident(open_api)
    r = await open_api.get(f"/incidents/{ident}")
    assert r.status == 200 and COOKIE in r.cookies
    page = await r.text()
    assert "anonymous" in page and 'id="do-ack"' in page and "Sign out" not in page
    r = await open_api.post(f"/incidents/{ident}/ack", data={}, allow_redirects=False)
    assert r.status == 403
    r = await open_api.post(f"/incidents/{ident}/ack", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status == 303


async def test_services_page_shows_the_figures_of_the_prometheus_series(console, tmp_path):
    clock = console.clock
    stage = make_stage(tmp_path / "availability")  # web-shop: fw1 and (r1/uplink-a or r2/uplink-b)
    (tmp_path / "availability").mkdir()
    await stage.open(clock)
    try:
        t = clock.now()
        await feed(stage, clock, ev(t + HOUR, "fw1", "host.down", Severity.CRITICAL))
        await feed(stage, clock, ev(t + 1.5 * HOUR, "fw1", "host.up", Severity.INFO))
        await feed(stage, clock, ev(t + 3 * HOUR, "r1", "IF-MIB::linkDown", Severity.MAJOR, "uplink-a"))
        await feed(stage, clock, ev(t + 3.25 * HOUR, "r2", "IF-MIB::linkDown", Severity.MAJOR, "uplink-b"))
        clock.advance_to(t + 4 * HOUR)  # the second outage still open
        series = samples(clock, stage)
        await sign_in(console, "viewer")
        page = await (await console.get("/services")).text()
    finally:
        await stage.close()
    row = page[page.index("web-shop") :]
    assert "DOWN" in row and "99.000%" in row  # down now; default_target 0.99 of make_stage
    for window in ("1d", "7d"):
        ratio = value(series, "correlator_availability_ratio", service="web-shop", window=window)
        assert percent(ratio) in row
        assert duration(value(series, "correlator_mtrs_seconds", service="web-shop", window=window)) in row
        assert duration(value(series, "correlator_mtbf_seconds", service="web-shop", window=window)) in row
    assert value(series, "correlator_sla_breach", service="web-shop", window="1d") == 1.0
    assert "below target" in row


def test_sessions_expire_when_unused_and_at_their_lifetime():
    from aiohttp.test_utils import make_mocked_request

    now = [0.0]
    sessions = Sessions(parse_tokens(token_config()), now=lambda: now[0])

    def who(sid: str):
        return sessions.who(make_mocked_request("GET", "/", headers={"Cookie": f"{COOKIE}={sid}"}))

    op = sessions.sign_in(TOKENS["operator"])
    wall = sessions.sign_in(TOKENS["viewer"])
    assert op is not None and wall is not None and sessions.sign_in("nope") is None
    for t in range(0, 30 * 3600, 4 * 3600):  # both used every 4 hours
        now[0] = float(t)
        if t <= LIFETIME:
            assert who(op.sid) is not None, t
        assert who(wall.sid) is not None, t
    assert who(op.sid) is None  # an acting session lasts a day at most
    now[0] += IDLE + 1
    assert who(wall.sid) is None  # unused for a shift
    assert (sessions.csrf(op.sid) == sessions.csrf(op.sid)) and sessions.csrf(op.sid) != sessions.csrf(
        wall.sid
    )


async def test_cookie_is_secure_behind_a_tls_proxy(console):
    r = await console.get("/signin", headers={"X-Forwarded-Proto": "https"})
    assert r.cookies[COOKIE]["secure"]


async def test_incident_page_shows_linked_change_known_error_workaround_and_symptoms(console):
    await new_record(
        console,
        "changes",
        title="Optics swap",
        cis=["edge-1"],
        start="2027-01-15T07:00:00Z",
        end="2027-01-15T09:00:00Z",
    )
    await new_record(
        console, "known-errors", title="Flapping optic", match={"host": "edge-1"}, workaround="reseat the SFP"
    )
    ident = await new_incident(console, host="edge-1")
    r = await console.patch(
        f"/api/v1/incidents/{ident}", json={"change_id": "CHG-000001"}, headers=bearer("admin")
    )
    assert r.status == 200
    inc, _ = await console.incidents.get(1)
    await console.problems.on_opened([(inc, None)])
    await sign_in(console, "viewer")
    page = await (await console.get(f"/incidents/{ident}")).text()
    assert "CHG-000001</a> Optics swap (requested" in page
    assert 'href="/problems#KE-000001"' in page and "reseat the SFP" in page


def test_symptoms_are_the_linked_events_of_other_cis():
    inc = Incident("core down", T0, host="core-r1", status=Status.ACKNOWLEDGED)
    timeline = [
        LogEntry(T0, "rule:t", "open"),
        LogEntry(T0, "rule:t", "event", {"host": "core-r1", "type": "host.down"}),
        LogEntry(T0 + 5, "rule:t", "event", {"host": "acc-sw3", "type": "host.down"}),
        LogEntry(T0 + 9, "op", "ack"),
    ]
    v = incident_view(inc, timeline, None)
    assert [e.detail["host"] for e in v.events] == ["core-r1", "acc-sw3"]
    assert [e.detail["host"] for e in v.symptoms] == ["acc-sw3"]
    assert [e.action for e in v.audit] == ["open", "ack"]
    assert v.legal == {"comment", "assign", "status", "resolve"} and v.statuses == ["in_progress", "on_hold"]


async def test_a_document_page_is_one_call_with_sign_in_and_headers():
    from correlator.console import add_document
    from correlator.console.render import document

    state = AppState(store=None, queue=None, incidents=object(), auth=parse_tokens(token_config()))  # type: ignore[arg-type]
    app = make_app(state, 1 << 20)

    async def produce(request) -> str:
        return "<!doctype html><title>Service review</title><p>99.95%</p>"

    add_document(app, "/document", "A document", produce)  # /report is the Service Review's
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/document", allow_redirects=False)).status == 303
        await sign_in(client, "viewer")
        r = await client.get("/document")
        assert r.status == 200 and await r.text() == await produce(None)
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
        doc = await (await client.get("/api/v1/openapi.json")).json()
        assert doc["paths"]["/document"]["get"]["tags"] == ["console"]
    finally:
        await client.close()
    own = document("<style>p{}</style>", csp="default-src 'none'; style-src 'unsafe-inline'")
    assert own.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"


async def test_hostile_forms_are_4xx_never_500(console):
    page = await (await console.get("/signin")).text()
    for body, ctype, status in (
        (b"csrf=%C3%A9&token=x", "application/x-www-form-urlencoded", 403),  # non-ASCII CSRF
        (b"csrf=\xff&token=x", "application/x-www-form-urlencoded", 400),  # not UTF-8
        (b"csrf=" + b"a" * (70 * 1024), "application/x-www-form-urlencoded", 413),
        (b"--b\r\n\r\n", "multipart/form-data; boundary=b", 415),
        ("&".join(f"f{i}=1" for i in range(200)).encode(), "application/x-www-form-urlencoded", 400),
    ):
        r = await console.post("/signin", data=body, headers={"Content-Type": ctype}, allow_redirects=False)
        assert r.status == status, (body[:40], await r.text())

    async def chunked():  # no Content-Length: the limit holds on what is read
        for _ in range(80):
            yield b"a" * 1024

    r = await console.post(
        "/signin", data=chunked(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status == 413
    assert csrf_of(page)  # the form itself still renders


async def test_a_form_arriving_in_pieces_is_read_whole(console):
    page = await (await console.get("/signin")).text()
    form = f"token={TOKENS['viewer']}&csrf={csrf_of(page)}".encode()

    async def in_pieces():  # the second piece arrives after the handler started reading
        yield form[:10]
        await asyncio.sleep(0.05)
        yield form[10:]

    r = await console.post(
        "/signin",
        data=in_pieces(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/incidents"


async def test_next_with_control_characters_stays_on_the_site(console):
    for target in ("/\t/evil.example/x", "/\n", "/\x00", "/\r\nSet-Cookie: x=1", "/é"):
        console.session.cookie_jar.clear()
        page = await (await console.get("/signin")).text()
        r = await console.post(
            "/signin",
            data={"csrf": csrf_of(page), "token": TOKENS["viewer"], "next": target},
            allow_redirects=False,
        )
        assert r.status == 303 and r.headers["Location"] == "/incidents", repr(target)
