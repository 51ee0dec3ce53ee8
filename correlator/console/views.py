"""What the console pages show, read from the services the API uses (never a second copy of their
rules): the filtered incident list, an incident's parts, the change calendar, service figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from correlator import errors
from correlator.availability.stage import EXPORTER
from correlator.availability.state import ServiceFigures
from correlator.changes import occurrences
from correlator.changes.model import Change, State, parse_human_id
from correlator.changes.service import ChangeService
from correlator.errors import FieldError
from correlator.incidents.model import ACTIVE, PRIORITIES, TRANSITIONS, Incident, LogEntry, Status
from correlator.incidents.service import IncidentService
from correlator.incidents.store import IncidentQuery

LIST_LIMIT = 500  # the largest page the store serves; a NOC with more open incidents filters
OPEN = "open"  # the list's default: every status that still needs work
STATUS_CHOICES = (OPEN, *(s.value for s in Status), "all")
CALENDAR_DAYS = 14
_OPEN_STATUSES = tuple(s.value for s in Status if s in ACTIVE)
_FILTER_KEYS = ("status", "priority", "service", "host", "group")


@dataclass(frozen=True, slots=True)
class Filters:
    status: str = OPEN
    priority: str = ""
    service: str = ""
    host: str = ""
    group: str = ""

    def query_string(self) -> str:
        return urlencode({k: getattr(self, k) for k in _FILTER_KEYS if getattr(self, k)})


def parse_filters(params: Mapping[str, str]) -> Filters:
    """The list's query string; unknown keys are ignored (a bookmarked URL keeps working)."""
    status = params.get("status") or OPEN
    if status not in STATUS_CHOICES:
        raise FieldError("status", f"must be one of {', '.join(STATUS_CHOICES)}")
    priority = params.get("priority") or ""
    if priority and priority not in PRIORITIES:
        raise FieldError("priority", f"must be one of {', '.join(PRIORITIES)}")
    text = {k: (params.get(k) or "").strip() for k in ("service", "host", "group")}
    for k, v in text.items():
        if len(v) > 256:
            raise FieldError(k, "must be at most 256 characters")
    return Filters(status, priority, **text)


@dataclass(slots=True)
class IncidentList:
    incidents: list[Incident]
    counts: dict[str, int]  # by priority, of the incidents listed
    truncated: bool  # more matched than one page holds


async def incident_list(svc: IncidentService, f: Filters) -> IncidentList:
    if f.status == OPEN:
        statuses: tuple[str, ...] = _OPEN_STATUSES
    elif f.status == "all":
        statuses = ()
    else:
        statuses = (f.status,)
    q = IncidentQuery(
        statuses,
        (f.priority,) if f.priority else (),
        f.host or None,
        f.service or None,
        limit=LIST_LIMIT,
        group=f.group or None,
    )
    page = await svc.query(q)
    rows = list(page.incidents)
    # Major incidents first, then by priority, newest first within one priority.
    rows.sort(key=lambda i: (not i.major, i.priority, -i.opened_at))
    counts = dict.fromkeys(PRIORITIES, 0)
    for i in rows:
        counts[i.priority] += 1
    return IncidentList(rows, counts, page.next_cursor is not None)


@dataclass(slots=True)
class IncidentView:
    incident: Incident
    events: list[LogEntry]  # the linked events (up to incidents.timeline_limit)
    symptoms: list[LogEntry]  # linked events of other CIs: attached by topology root cause
    audit: list[LogEntry]  # everything else: who did what, when
    change: Change | None
    legal: frozenset[str]  # actions the state machine allows now
    statuses: list[str]  # the working statuses it may be set to now


def incident_view(inc: Incident, timeline: list[LogEntry], change: Change | None) -> IncidentView:
    events = [e for e in timeline if e.action == "event"]
    symptoms = [e for e in events if inc.host and e.detail.get("host") not in ("", inc.host)]
    audit = [e for e in timeline if e.action != "event"]
    statuses = [s.value for s in (Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.ON_HOLD)]
    statuses = [s for s in statuses if Status(s) in TRANSITIONS[inc.status]]
    return IncidentView(inc, events, symptoms, audit, change, legal_actions(inc), statuses)


def legal_actions(inc: Incident) -> frozenset[str]:
    """The actions worth a button in this status, read off the incident state machine."""
    nxt = TRANSITIONS[inc.status]
    out = {"comment"}
    if inc.status is not Status.CLOSED:
        out.add("assign")
    if Status.ACKNOWLEDGED in nxt:
        out.add("ack")
    if nxt & {Status.IN_PROGRESS, Status.ON_HOLD}:
        out.add("status")
    if Status.RESOLVED in nxt:
        out.add("resolve")
    if Status.CLOSED in nxt:
        out.add("close")
    if Status.NEW in nxt:
        out.add("reopen")
    return frozenset(out)


async def linked_change(svc: ChangeService | None, change_id: str | None) -> Change | None:
    n = parse_human_id(change_id) if change_id else None
    if svc is None or n is None:
        return None
    try:
        return (await svc.get(n))[0]
    except errors.NotFound:
        return None


@dataclass(slots=True)
class CalendarEntry:
    start: float
    end: float
    title: str
    state: str  # a change's state, or "planned" for a calendar occurrence not yet a record
    cis: list[str]
    change: Change | None  # None for an occurrence beyond the record horizon
    window: str | None  # the calendar window it comes from


@dataclass(slots=True)
class CalendarView:
    days: list[tuple[str, list[CalendarEntry]]] = field(default_factory=list)  # (YYYY-MM-DD Weekday, ...)
    recent: list[Change] = field(default_factory=list)  # finished in the last week, newest first


async def change_calendar(svc: ChangeService, now: float) -> CalendarView:
    """Upcoming and running changes for CALENDAR_DAYS, recurring calendar windows expanded into
    their occurrences (an occurrence that is already a change record is shown once, as the record)."""
    records = await svc.query((), LIST_LIMIT, None)
    horizon = now + CALENDAR_DAYS * 86400
    entries: list[CalendarEntry] = []
    keys = set()
    for c in records:
        if c.calendar:
            keys.add(c.calendar)
        if c.end > now and c.start <= horizon and c.state not in (State.CANCELLED, State.FAILED):
            entries.append(
                CalendarEntry(c.start, c.end, c.title, c.state.value, c.cis, c, occurrences.window_of(c))
            )
    for w in svc.settings.calendar.windows:
        for start, end in w.occurrences(now, CALENDAR_DAYS * 86400):
            if occurrences.key(w.name, start) not in keys:
                entries.append(CalendarEntry(start, end, w.title, "planned", list(w.cis), None, w.name))
    entries.sort(key=lambda e: (e.start, e.title))
    view = CalendarView()
    for e in entries:
        day = datetime.fromtimestamp(max(e.start, now), UTC).strftime("%Y-%m-%d %A")
        if not view.days or view.days[-1][0] != day:
            view.days.append((day, []))
        view.days[-1][1].append(e)
    week_ago = now - 7 * 86400
    view.recent = [c for c in records if c.finished_at is not None and c.finished_at >= week_ago]
    return view


def service_figures(now: float) -> dict[str, ServiceFigures] | None:
    """The figures the Prometheus exporter renders at scrape (the same function, the same moment's
    history); None when no services file is configured."""
    src = EXPORTER.source
    if src is None or src.clock is None:
        return None
    return src.state.figures(now)
