"""Incidents and changes as Grafana annotations: one row per record with the columns Grafana's
annotation queries take (time, timeEnd, title, text, tags), times in ISO 8601 UTC.

GET /api/v1/annotations serves them for the Infinity data source (deploy/grafana); docs/report.md
gives the same rows as SQL for Grafana's PostgreSQL data source.
"""

from __future__ import annotations

from typing import Any

from correlator.changes.model import Change
from correlator.event import iso
from correlator.incidents.model import Incident

MAX_ROWS = 1000  # per kind: more marks than this hide the graph they annotate


def incident_rows(incidents: list[Incident], priorities: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """An incident spans its opening to its resolution (open: a point at its opening)."""
    chosen = [i for i in incidents if not priorities or i.priority in priorities][-MAX_ROWS:]
    return [
        {
            "time": iso(i.opened_at),
            "timeEnd": iso(i.resolved_at) if i.resolved_at is not None else None,
            "title": f"{i.human_id} {i.priority}: {i.title}",
            "text": _text(i.status.value, i.host, i.service, i.change_id and f"caused by {i.change_id}"),
            "tags": _tags("incident", i.priority, i.host, i.service),
            "kind": "incident",
            "id": i.human_id,
        }
        for i in chosen
    ]


def change_rows(changes: list[Change], start: float, end: float) -> list[dict[str, Any]]:
    """A change spans what it really took (started_at to finished_at) when it ran, else its
    planned window; withdrawn calendar occurrences are left out."""
    rows = []
    for c in sorted(changes, key=lambda c: (c.started_at or c.start, c.id)):
        t0 = c.started_at if c.started_at is not None else c.start
        t1 = c.finished_at if c.started_at is not None and c.finished_at is not None else c.end
        if c.withdrawn or t0 >= end or t1 < start:
            continue
        rows.append(
            {
                "time": iso(t0),
                "timeEnd": iso(t1),
                "title": f"{c.human_id} {c.state.value}: {c.title}",
                "text": _text(
                    f"risk {c.risk}",
                    ", ".join(c.cis),
                    ", ".join(c.services),
                    c.incidents and f"{len(c.incidents)} incident(s) linked",
                ),
                "tags": _tags("change", c.state.value, *c.cis[:5]),
                "kind": "change",
                "id": c.human_id,
            }
        )
    return rows[-MAX_ROWS:]


def _text(*parts: str | int | list[int] | None) -> str:
    return " · ".join(str(p) for p in parts if p)


def _tags(*values: str) -> str:
    """Comma-separated, as Grafana's annotation queries take them (commas inside a value dropped)."""
    return ",".join(v.replace(",", " ") for v in values if v)
