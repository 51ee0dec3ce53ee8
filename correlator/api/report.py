"""GET /api/v1/report: the Service Review of a period as JSON, and the same report as the console's
/report page (HTML), both computed from the daemon's own stores (correlator/report/).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from aiohttp import web
from prometheus_client.metrics import Counter

from correlator.api.common import STATE, AppState, dumps_response
from correlator.api.openapi import ERROR, operation, param
from correlator.availability.stage import EXPORTER as AVAILABILITY
from correlator.console import add_document
from correlator.errors import FieldError
from correlator.report import AvailabilityInput, ReportStores, compute_report, render_report_html
from correlator.report.html import CSP
from correlator.report.period import parse_period
from correlator.store import EventStore
from correlator.store.sqlite import SqliteEventStore

REPORTS = Counter(
    "correlator_reports_total",
    "Service Review reports and annotation queries asked for (API and console), by outcome:"
    " ok, invalid (a 400) or busy (a 503: too many reports at once)",
    ["outcome"],
)
MAX_RUNNING = 2  # reports computed at once; more answer 503 + Retry-After (a long period reads a lot)
_RUNNING = asyncio.Semaphore(MAX_RUNNING)
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
    responses={
        200: ("the report (docs/report.md)", {"type": "object"}),
        400: ("invalid period", ERROR),
        503: ("too many reports being computed: see Retry-After", ERROR),
    },
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
    if _RUNNING.locked():
        REPORTS.labels("busy").inc()
        raise web.HTTPServiceUnavailable(
            reason=f"{MAX_RUNNING} reports are being computed; try again shortly",
            headers={"Retry-After": "5"},
        )
    async with _RUNNING, AsyncExitStack() as stack:
        doc = await compute_report(await stores_of(state, stack), start, end, now)
    REPORTS.labels("ok").inc()
    return doc


async def stores_of(state: AppState, stack: AsyncExitStack) -> ReportStores:
    stage = AVAILABILITY.source  # the live availability stage (None without a services file)
    avail = None
    if stage is not None and stage.db is not None:
        _, services, outages = await stage.db.load()
        avail = AvailabilityInput(stage.state.settings, stage.state.model, services, outages)
    records = state.changes.store if state.changes is not None else None
    assert state.incidents is not None
    await state.incidents.caught_up()  # read from the store: the commits in flight first
    events: EventStore = state.store
    if isinstance(events, SqliteEventStore):
        # Counting a month of events takes a while: on a connection of its own (a WAL reader), so
        # the store's writes, on the store's connection, never wait for it.
        events = SqliteEventStore(events.path)
        await events.open()
        stack.push_async_callback(events.close)
    return ReportStores(state.incidents.store, records, events, avail)
