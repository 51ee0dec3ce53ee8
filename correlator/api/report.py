"""GET /api/v1/report: the Service Review of a period as JSON, and the same report as the console's
/report page (HTML), both computed from the daemon's own stores (correlator/report/).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter

from correlator.api.common import STATE, AppState, dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.availability.stage import EXPORTER as AVAILABILITY
from correlator.console import add_document
from correlator.errors import FieldError
from correlator.report import AvailabilityInput, ReportStores, compute_report, render_report_html
from correlator.report.html import CSP
from correlator.report.period import parse_period

REPORTS = Counter(
    "correlator_reports_total",
    "Service Review reports and annotation queries asked for (API and console), by outcome: ok, or invalid (a 400)",
    ["outcome"],
)
PARAMS = (
    param("from", "query", "start of the period: ISO 8601 or epoch seconds (default: to minus period)"),
    param("to", "query", "end of the period, exclusive (default: now, or from plus period)"),
    param("period", "query", "length of the period, e.g. 7d or 4w (default 30d; at most 400d)"),
)


def add_routes(app: web.Application) -> None:
    """The API route, and the console page when the console is served (it needs its sessions)."""
    app.router.add_get("/api/v1/report", get_report)
    add_document(app, "/report", "The Service Review (HTML)", report_page, csp=CSP)


@operation(
    summary="The Service Review of a period: availability, incidents, problems, changes, noise",
    role="viewer",
    tags=("report",),
    parameters=PARAMS,
    responses={200: ("the report (docs/report.md)", {"type": "object"}), 400: ("invalid period", ERROR)},
)
async def get_report(request: web.Request) -> web.Response:
    try:
        doc = await report_of(request)
    except FieldError as e:
        return dumps_response(400, {"error": str(e), "field": e.field})
    return dumps_response(200, doc)


async def report_page(request: web.Request) -> str:
    """The console's /report?from=&to=&period=: a bad period is the console's HTML 400 page."""
    return render_report_html(await report_of(request))


async def report_of(request: web.Request) -> dict[str, object]:
    state = request.app[STATE]
    if state.incidents is None:
        raise web.HTTPServiceUnavailable(reason="incident management is not running")
    now = state.incidents.clock.now()
    try:
        start, end = parse_period(dict(request.query), now)
    except FieldError:
        REPORTS.labels("invalid").inc()
        raise
    doc = await compute_report(await stores_of(state), start, end, now)
    REPORTS.labels("ok").inc()
    return doc


async def stores_of(state: AppState) -> ReportStores:
    stage = AVAILABILITY.source  # the live availability stage (None without a services file)
    avail = None
    if stage is not None and stage.db is not None:
        _, services, outages = await stage.db.load()
        avail = AvailabilityInput(stage.state.settings, stage.state.model, services, outages)
    records = state.changes.store if state.changes is not None else None
    assert state.incidents is not None
    return ReportStores(state.incidents.store, records, state.store, avail)
