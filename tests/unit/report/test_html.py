"""The Service Review's HTML: a chart per section, hostile text escaped, nothing that loads or runs;
served at GET /api/v1/report (JSON, viewer) and as the console's /report page (HTML, signed in)."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from correlator.api import report as report_api
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.report import ReportStores, compute_report, render_report_html
from correlator.report.html import CSP
from tests.unit.api.conftest import T0, api, bearer, clock
from tests.unit.console.test_console import sign_in

__all__ = ["api", "clock"]
HOSTILE = '<script>alert("x")</script>'
SECTIONS = ("availability", "incidents", "problems", "changes", "noise")


async def empty_report(tmp_path: Path) -> dict[str, Any]:
    store = SqliteIncidentStore(tmp_path / "incidents.db")
    await store.open()
    try:
        return await compute_report(ReportStores(store), T0 - 7 * 86400, T0, T0)
    finally:
        await store.close()


async def test_an_empty_period_still_has_every_section_and_chart(tmp_path: Path) -> None:
    page = render_report_html(await empty_report(tmp_path))
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("<svg") == 7 and page.count(">no data</text>") == 6  # the weekly columns show 0s
    assert "<script" not in page and "<link" not in page and "src=" not in page


async def test_text_from_events_and_records_is_escaped_everywhere(tmp_path: Path) -> None:
    data = await empty_report(tmp_path)
    data["noise"]["cis"] = [{"ci": HOSTILE, "events": 5, "incidents": 1}]
    data["noise"]["rules"] = [{"rule": HOSTILE, "events": 5, "incidents": 1}]
    data["recurring"]["signatures"] = [{"key": HOSTILE, "rule": "r", "host": "h", "count": 2}]
    data["changes"]["by_outcome"] = {"completed": 1}
    data["changes"]["list"] = [
        {"id": "CHG-000001", "title": HOSTILE, "state": "completed", "risk": "low",
         "start": "2026-11-30T10:00:00Z", "end": "2026-11-30T11:00:00Z", "incidents": 0},
    ]  # fmt: skip
    page = render_report_html(data)
    assert "<script" not in page and "alert(" in page
    assert len(re.findall(r"&lt;script&gt;alert\(&#34;x&#34;\)&lt;/script&gt;", page)) >= 4  # tables
    assert page.count("&lt;script&gt;alert(") >= 7  # and the chart labels (shortened ones included)


async def test_the_api_and_the_console_serve_the_same_report(api: TestClient) -> None:
    r = await api.get("/api/v1/report?period=7d", headers=bearer("viewer"))
    assert r.status == 200
    doc = await r.json()
    assert doc["period"]["days"] == 7 and doc["incidents"]["total"] == 0
    r = await api.get("/api/v1/report?period=7d")
    assert r.status == 401
    r = await api.get("/api/v1/report?period=7x", headers=bearer("viewer"))
    assert r.status == 400 and (await r.json())["field"] == "period"
    async with AsyncExitStack() as held:  # as many reports as may run at once are running
        for _ in range(report_api.MAX_RUNNING):
            await held.enter_async_context(report_api._RUNNING)
        r = await api.get("/api/v1/report", headers=bearer("viewer"))
        assert r.status == 503 and r.headers["Retry-After"] == "5" and "reports" in (await r.json())["error"]
    assert (await api.get("/api/v1/report", headers=bearer("viewer"))).status == 200

    assert (await api.get("/report", allow_redirects=False)).status == 303  # sign in first
    await sign_in(api, "viewer")
    assert '<a href="/report">Review</a>' in await (await api.get("/incidents")).text()  # in every header
    r = await api.get("/report?period=7d")
    page = await r.text()
    assert r.status == 200 and "<h1>Service Review</h1>" in page and page.count("<svg") == 7
    assert r.headers["Content-Security-Policy"] == CSP and "script-src" not in CSP
    assert r.headers["X-Frame-Options"] == "DENY"
    r = await api.get("/report?from=yesterday")
    assert r.status == 400 and "text/html" in r.headers["Content-Type"] and "from" in await r.text()
