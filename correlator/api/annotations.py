"""GET /api/v1/annotations: incidents and changes of a period as Grafana annotation rows
(correlator/report/annotations.py), for the Infinity data source of the shipped dashboards.
"""

from __future__ import annotations

from aiohttp import web

from correlator.api.common import STATE, dumps_response
from correlator.api.incidents import csv_values
from correlator.api.openapi import ERROR, operation, param
from correlator.api.report import REPORTS
from correlator.errors import FieldError
from correlator.event import parse_time
from correlator.incidents.model import PRIORITIES
from correlator.report.annotations import change_rows, incident_rows
from correlator.report.compute import changes_during, incidents_in
from correlator.report.period import parse_period

KINDS = ("incidents", "changes")
ROW = {
    "type": "object",
    "properties": {
        "time": {"type": "string", "format": "date-time"},
        "timeEnd": {"type": "string", "format": "date-time", "nullable": True},
        "title": {"type": "string"},
        "text": {"type": "string"},
        "tags": {"type": "string", "description": "comma-separated"},
        "kind": {"type": "string", "enum": ["incident", "change"]},
        "id": {"type": "string"},
    },
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/annotations", get_annotations)


@operation(
    summary="Incidents and changes of a period as Grafana annotations (Infinity data source)",
    role="viewer",
    tags=("report",),
    parameters=(
        param("from", "query", "start: ISO 8601 or epoch seconds (Grafana: ${__from:date:iso})"),
        param("to", "query", "end, exclusive (Grafana: ${__to:date:iso}); default now"),
        param("kind", "query", "incidents, changes or both comma-separated (default both)"),
        param("priority", "query", "incidents of these priorities only, e.g. P1,P2"),
    ),
    responses={
        200: ("annotation rows, oldest first", {"type": "array", "items": ROW}),
        400: ("bad query", ERROR),
    },
)
async def get_annotations(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.incidents is None:
        raise web.HTTPServiceUnavailable(reason="incident management is not running")
    params = dict(request.query)
    try:
        kinds = csv_values(params, "kind", KINDS) or KINDS
        priorities = csv_values(params, "priority", PRIORITIES)
        for key in ("kind", "priority"):  # the rest is the period's
            params.pop(key, None)
        start, end = parse_period(params, state.incidents.clock.now())
    except FieldError as e:
        REPORTS.labels("invalid").inc()
        return dumps_response(400, {"error": str(e), "field": e.field})
    rows = []
    if "incidents" in kinds:
        await state.incidents.caught_up()  # read from the store: the commits in flight first
        rows += incident_rows(await incidents_in(state.incidents.store, start, end), priorities)
    if "changes" in kinds and state.changes is not None:
        rows += change_rows(await changes_during(state.changes.store, start, end), start, end)
    rows.sort(key=lambda r: parse_time(r["time"]))  # ISO text sorts wrong within a second
    REPORTS.labels("ok").inc()
    return dumps_response(200, rows)
