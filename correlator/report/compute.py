"""The Service Review's figures for a period, computed from the stores: availability per service,
incidents, recurring problems, changes and noise. One dict, served as JSON and rendered as HTML.

Read-only: it pages through the incident and record stores and asks the event store for one
aggregate, so the daemon (GET /api/v1/report) and `correlator report --data` compute the same thing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.availability.history import ServiceHistory, effective, merge
from correlator.availability.model import ServiceModel
from correlator.availability.settings import AvailabilitySettings
from correlator.changes.model import Change
from correlator.event import iso
from correlator.incidents.model import PRIORITIES, Incident
from correlator.incidents.store import IncidentQuery, IncidentStore
from correlator.problems.model import split_signature
from correlator.records.store import Kind, RecordStore
from correlator.store import EventStore

TOP = 10  # rows in each "top" table
MAX_OUTAGES = 50  # outages listed per service (all are counted)
PAGE = 500  # the incident store's page
WEEK = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class AvailabilityInput:
    """What availability figures are made of: the settings (maintenance, default target), the
    services file and the persisted rows of availability.db (availability/db.py `load`)."""

    settings: AvailabilitySettings
    model: ServiceModel
    services: list[tuple[str, float]]  # (service, tracked since)
    outages: list[tuple[str, float, float | None]]  # (service, start, end or None while open)


@dataclass(frozen=True, slots=True)
class ReportStores:
    incidents: IncidentStore
    records: RecordStore | None = None  # changes, problems, known errors, recurrence
    events: EventStore | None = None  # events in per CI
    availability: AvailabilityInput | None = None  # None: no services file configured


async def compute_report(stores: ReportStores, start: float, end: float, now: float) -> dict[str, Any]:
    """The report for incidents opened (and outages, changes, events) in [start, end). `now` bounds
    an open outage and the availability window, so a period reaching into the future is not
    counted as up time that has not happened yet."""
    incidents = await incidents_in(stores.incidents, start, end)
    changes, problems, known_errors, occurrences = [], [], [], []
    if stores.records is not None:
        changes = [Change.from_doc(d) for d in await all_records(stores.records, "changes")]
        problems = await all_records(stores.records, "problems")
        known_errors = await all_records(stores.records, "known_errors")
        occurrences = [o for o in await stores.records.occurrences_since(start) if o[2] < end]
    busiest = await stores.events.busiest_hosts(start, end, TOP) if stores.events is not None else None
    return {
        "period": {
            "from": iso(start),
            "to": iso(end),
            "generated_at": iso(now),
            "days": (end - start) / 86400,
        },
        "availability": availability(stores.availability, start, min(end, now)),
        "incidents": incident_figures(incidents, start, end),
        "recurring": recurring(incidents, occurrences, problems, known_errors, start, end),
        "changes": change_figures(changes, incidents, start, end),
        "noise": noise(incidents, busiest),
    }


async def incidents_in(store: IncidentStore, start: float, end: float) -> list[Incident]:
    """Every incident opened in [start, end), oldest first."""
    out: list[Incident] = []
    cursor: int | None = None
    while True:
        page = await store.query(IncidentQuery(since=start, until=end, limit=PAGE, cursor=cursor))
        out.extend(page.incidents)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    out.sort(key=lambda i: (i.opened_at, i.id))
    return out


async def changes_during(records: RecordStore, start: float, end: float) -> list[Change]:
    """Every change whose span (what it took once started, else its planned window) reaches into
    [start, end]: the store applies the bounds (RecordStore.changes_during)."""
    out: list[Change] = []
    cursor: int | None = None
    while True:
        rows = await records.changes_during(start, end, limit=1000, cursor=cursor)
        out.extend(Change.from_doc(doc) for _, doc in rows)
        if len(rows) < 1000:
            return out
        cursor = rows[-1][0]


async def all_records(records: RecordStore, kind: Kind) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        rows = await records.records(kind, limit=1000, cursor=cursor)
        out.extend(doc for _, doc in rows)
        if len(rows) < 1000:
            return out
        cursor = rows[-1][0]


# -- availability ---------------------------------------------------------------------------------
def availability(src: AvailabilityInput | None, start: float, until: float) -> dict[str, Any] | None:
    if src is None:
        return None
    since = dict(src.services)
    outages: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    for name, s, e in sorted(src.outages, key=lambda o: (o[0], o[1])):
        outages[name].append((s, e))
    rows: list[dict[str, Any]] = []
    for svc in src.model.services.values():
        target = svc.target if svc.target is not None else src.settings.default_target
        maintenance = merge(
            [
                (m.start, m.end)
                for m in src.settings.maintenance
                if m.services is None or svc.name in m.services
            ]
        )
        h = ServiceHistory(since.get(svc.name, until), maintenance)
        listed: list[dict[str, Any]] = []
        for s, e in outages[svc.name]:
            if s >= until:
                break
            if e is None:
                h.start(s)
            else:
                h.load_closed(s, e, keep=True)
            stop = until if e is None else min(e, until)
            secs = effective(max(s, start), stop, maintenance)
            if secs > 0:
                listed.append({"start": iso(s), "end": iso(e) if e is not None else None, "seconds": secs})
        f = h.window(until, until - start) if until > start else None
        ratio = _num(f.ratio) if f is not None else None
        rows.append(
            {
                "service": svc.name,
                "target": target,
                "availability": ratio,
                "met": None if ratio is None else ratio >= target,
                "downtime_seconds": f.downtime if f is not None else 0.0,
                "outages": f.outages if f is not None else 0,
                "mtbf_seconds": _num(f.mtbf) if f is not None else None,
                "mtrs_seconds": _num(f.mtrs) if f is not None else None,
                "outage_list": sorted(listed, key=lambda o: -o["seconds"])[:MAX_OUTAGES],
            }
        )
    rows.sort(key=lambda r: r["service"])
    return {"services": rows, "breached": sum(1 for r in rows if r["met"] is False)}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


# -- incidents ------------------------------------------------------------------------------------
def week_starts(start: float, end: float) -> list[float]:
    """Monday 00:00 UTC of every ISO week that overlaps [start, end)."""
    d = datetime.fromtimestamp(start, UTC)
    monday = datetime(d.year, d.month, d.day, tzinfo=UTC) - timedelta(days=d.weekday())
    out = []
    t = monday.timestamp()
    while t < end:
        out.append(t)
        t += WEEK
    return out


def week_label(t: float) -> str:
    year, week, _ = datetime.fromtimestamp(t, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _mean(values: Iterable[float]) -> float | None:
    v = list(values)
    return sum(v) / len(v) if v else None


def _mtta(incs: list[Incident]) -> float | None:
    return _mean(i.acknowledged_at - i.opened_at for i in incs if i.acknowledged_at is not None)


def _mttr(incs: list[Incident]) -> float | None:
    return _mean(i.resolved_at - i.opened_at for i in incs if i.resolved_at is not None)


def incident_figures(incidents: list[Incident], start: float, end: float) -> dict[str, Any]:
    weeks = week_starts(start, end)
    by_week: dict[float, list[Incident]] = {w: [] for w in weeks}
    for inc in incidents:
        w = weeks[0] + ((inc.opened_at - weeks[0]) // WEEK) * WEEK
        by_week[w].append(inc)
    levels = Counter(i.escalation_level for i in incidents if i.escalation_level > 0)
    return {
        "total": len(incidents),
        "by_priority": _by_priority(incidents),
        "by_status": dict(sorted(Counter(i.status.value for i in incidents).items())),
        "major": sum(1 for i in incidents if i.major),
        "acknowledged": sum(1 for i in incidents if i.acknowledged_at is not None),
        "resolved": sum(1 for i in incidents if i.resolved_at is not None),
        "reopened": sum(1 for i in incidents if i.reopen_count > 0),
        "mtta_seconds": _mtta(incidents),
        "mttr_seconds": _mttr(incidents),
        "escalated": sum(levels.values()),
        "escalations_by_level": {str(k): v for k, v in sorted(levels.items())},
        "by_week": [
            {
                "week": week_label(w),
                "start": iso(w),
                "total": len(incs),
                "by_priority": _by_priority(incs),
                "mtta_seconds": _mtta(incs),
                "mttr_seconds": _mttr(incs),
                "escalated": sum(1 for i in incs if i.escalation_level > 0),
            }
            for w, incs in by_week.items()
        ],
    }


def _by_priority(incs: list[Incident]) -> dict[str, int]:
    c = Counter(i.priority for i in incs)
    return {p: c.get(p, 0) for p in PRIORITIES}


# -- problems -------------------------------------------------------------------------------------
def recurring(
    incidents: list[Incident],
    occurrences: list[tuple[str, int, float]],
    problems: list[dict[str, Any]],
    known_errors: list[dict[str, Any]],
    start: float,
    end: float,
) -> dict[str, Any]:
    """Signatures counted by (re)openings in the period; problems and known errors by the period's
    incidents linked to them."""
    sigs = Counter(sig for sig, _, _ in occurrences)
    in_period = {i.id for i in incidents}
    titles = {p["id"]: p for p in problems}
    per_problem = Counter(_num_id(i.problem_id) for i in incidents if _ref(i.problem_id))
    for p in problems:  # a problem lists its incidents; links made by hand are in both places
        linked = len(in_period & set(p.get("incidents", ())))
        per_problem[p["id"]] = max(per_problem[p["id"]], linked)
    ke_titles = {k["id"]: k.get("title", "") for k in known_errors}
    per_ke = Counter(_num_id(i.known_error_id) for i in incidents if _ref(i.known_error_id))
    return {
        "signatures": [
            {**split_signature(sig), "count": n}
            for sig, n in sorted(sigs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        ],
        "problems": [
            {
                "id": f"PRB-{pid:06d}",
                "title": titles[pid].get("title", "") if pid in titles else "",
                "state": titles[pid].get("state", "") if pid in titles else "",
                "incidents": n,
            }
            for pid, n in sorted(per_problem.items(), key=lambda kv: (-kv[1], kv[0]))
            if n > 0
        ][:TOP],
        "problems_opened": sum(1 for p in problems if start <= p.get("opened_at", -1.0) < end),
        "known_errors": [
            {"id": f"KE-{kid:06d}", "title": ke_titles.get(kid, ""), "incidents": n}
            for kid, n in sorted(per_ke.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        ],
        "incidents_with_known_error": sum(per_ke.values()),
    }


def _ref(value: str | None) -> bool:
    """A linked record's human id (PRB-000012); anything else is not counted."""
    return value is not None and value.rsplit("-", 1)[-1].isascii() and value.rsplit("-", 1)[-1].isdigit()


def _num_id(value: str | None) -> int:
    return int(str(value).rsplit("-", 1)[-1])


# -- changes --------------------------------------------------------------------------------------
def change_figures(
    changes: list[Change], incidents: list[Incident], start: float, end: float
) -> dict[str, Any]:
    """Changes whose planned window overlaps the period, by state (their outcome), and the period's
    incidents linked to a change as its suspected cause."""
    chosen = sorted((c for c in changes if c.start < end and c.end > start), key=lambda c: (c.start, c.id))
    caused = [i for i in incidents if _ref(i.change_id)]
    per_change = Counter(_num_id(i.change_id) for i in caused)
    return {
        "total": len(chosen),
        "by_outcome": dict(sorted(Counter(c.state.value for c in chosen).items())),
        "caused_incidents": len(caused),
        "causing_changes": len(per_change),
        "list": [
            {
                "id": c.human_id,
                "title": c.title,
                "state": c.state.value,
                "risk": c.risk,
                "start": iso(c.start),
                "end": iso(c.end),
                "incidents": per_change.get(c.id, 0),
            }
            for c in chosen
        ],
    }


# -- noise ----------------------------------------------------------------------------------------
def noise(incidents: list[Incident], busiest: list[tuple[str, int]] | None) -> dict[str, Any]:
    """The CIs with the most events in (from the event store) and the rules with the most incidents
    out; a rule's events are those its incidents took in (event_count)."""
    by_host = Counter(i.host for i in incidents if i.host)
    if busiest is None:  # no event store at hand: the CIs ranked by the events their incidents took in
        events_by_host: Counter[str] = Counter()
        for i in incidents:
            if i.host:
                events_by_host[i.host] += i.event_count
        busiest = sorted(events_by_host.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    rule_incidents = Counter(i.rule for i in incidents if i.rule)
    rule_events: Counter[str] = Counter()
    for i in incidents:
        if i.rule:
            rule_events[i.rule] += i.event_count
    return {
        "cis": [{"ci": h, "events": n, "incidents": by_host.get(h, 0)} for h, n in busiest],
        "rules": [
            {"rule": r, "events": rule_events[r], "incidents": n}
            for r, n in sorted(rule_incidents.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        ],
    }
