"""What happens to an incident: open, link an event, change status, escalate, reopen, close.

Pure functions over the in-memory `Incident`; each records its audit/timeline entries and the
notifications it asks for in a `Changes` batch that the service then saves in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.metrics import Counter, Histogram

from correlator.event import SEVERITY_RANK, Event, Severity
from correlator.incidents.model import TRANSITIONS, IllegalTransition, Incident, LogEntry, Status
from correlator.incidents.settings import EscalationStep, IncidentSettings
from correlator.metrics import Children

OPENED = Counter("correlator_incidents_opened_total", "Incidents opened, by priority", ["priority"])
OPENED_BY = Children(OPENED)
REOPENED = Counter(
    "correlator_incidents_reopened_total", "Resolved incidents reopened by a new event or by hand"
)
ESCALATIONS = Counter("correlator_incident_escalations_total", "Escalation steps taken, by level", ["level"])
_DURATION_BUCKETS = (
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
)
TIME_TO_ACK = Histogram(
    "correlator_incident_time_to_acknowledge_seconds",
    "Time from opening to acknowledgement (MTTA = sum / count)",
    buckets=_DURATION_BUCKETS,
)
TIME_TO_RESOLVE = Histogram(
    "correlator_incident_time_to_resolve_seconds",
    "Time from opening to resolution (MTTR = sum / count)",
    buckets=_DURATION_BUCKETS,
)

# (impact, urgency) implied by an event's severity when the rule does not say.
SEVERITY_IMPACT_URGENCY: dict[Severity, tuple[int, int]] = {
    Severity.CRITICAL: (1, 1),
    Severity.MAJOR: (1, 2),
    Severity.MINOR: (2, 2),
    Severity.WARNING: (2, 3),
    Severity.INFO: (3, 3),
    Severity.CLEAR: (3, 3),
}
# Looked up once: reading an enum member off its class costs more than the table lookup itself.
_INFO_RANK = SEVERITY_RANK[Severity.INFO]
# Enum `.value` is a descriptor call (~0.2 µs); an alert storm reads it for every incident it opens.
_SEVERITY_TEXT = {s: s.value for s in Severity}
_OPENED_SEVERITY = {s: s.value if SEVERITY_RANK[s] > _INFO_RANK else "info" for s in Severity}


@dataclass
class Changes:
    """Everything one batch changed: saved together, then notified."""

    new: list[Incident] = field(default_factory=list)
    dirty: dict[int, Incident] = field(default_factory=dict)  # keyed by id() of the object
    entries: list[LogEntry] = field(default_factory=list)
    notices: list[tuple[str, Incident, tuple[str, ...]]] = field(default_factory=list)
    opened_by: dict[str, int] = field(default_factory=dict)  # incidents opened, by their opening priority
    notifying: bool = True  # False: no notification target is configured, `notify` keeps nothing
    # Where each (kind, id() of the incident) is in `notices`: a batch that opens thousands of
    # incidents (an alert storm) would otherwise scan the list once per incident.
    _notice_at: dict[tuple[str, int], int] = field(default_factory=dict)

    def log(self, inc: Incident, at: float, actor: str, action: str, **detail: Any) -> None:
        self.entries.append(LogEntry(at, actor, action, detail, inc))
        self.touch(inc, at)

    def touch(self, inc: Incident, at: float) -> None:
        if at > inc.updated_at:
            inc.updated_at = at
        if inc.id:
            self.dirty[id(inc)] = inc

    def notify(self, kind: str, inc: Incident, extra_targets: tuple[str, ...] = ()) -> None:
        """Ask for one notification per target subscribed to `kind`, plus `extra_targets`."""
        if not self.notifying:
            return
        n = self._notice_at.get((kind, id(inc)))
        if n is not None:
            k, i, extra = self.notices[n]
            self.notices[n] = (k, i, extra + tuple(t for t in extra_targets if t not in extra))
            return
        self._notice_at[(kind, id(inc))] = len(self.notices)
        self.notices.append((kind, inc, extra_targets))

    def __bool__(self) -> bool:
        return bool(self.new or self.dirty or self.entries)

    def count_opened(self) -> None:
        """Add the batch's openings to `correlator_incidents_opened_total`, once it is saved: one
        increment per priority, where a storm batch opens thousands."""
        for priority, n in self.opened_by.items():
            OPENED_BY(priority).inc(n)


def open_incident(
    settings: IncidentSettings,
    changes: Changes,
    now: float,
    actor: str,
    *,
    title: str,
    impact: int,
    urgency: int,
    major: bool = False,
    **fields: Any,
) -> Incident:
    inc = Incident(title=title, opened_at=now, impact=impact, urgency=urgency, **fields)
    inc.priority = settings.priority(impact, urgency)
    inc.major = major or is_major(settings, inc.priority)
    inc.updated_at = now
    changes.new.append(inc)
    changes.log(
        inc, now, actor, "open", priority=inc.priority, impact=impact, urgency=urgency, major=inc.major
    )
    changes.opened_by[inc.priority] = changes.opened_by.get(inc.priority, 0) + 1
    changes.notify("open", inc)
    if inc.major:
        changes.notify("major", inc)
    schedule(inc, settings)
    return inc


def open_for_event(
    settings: IncidentSettings,
    changes: Changes,
    now: float,
    actor: str,
    ev: Event,
    impact: int | None,
    urgency: int | None,
    *,
    title: str,
    major: bool = False,
    description: str = "",
    host: str = "",
    service: str = "",
    category: str = "",
    assignment_group: str = "",
    key: str | None = None,
    rule: str = "",
) -> Incident:
    """`open_incident` then `link_event` of its first event, as one step: what a storm of distinct
    alerts does once per alert. The same incident, entries and notices as the two calls, without
    what cannot apply to an incident that is being opened (its first event cannot raise the
    priority it was opened with, nor find the timeline full). The fields are named, not `**fields`,
    and the Incident is made from its two fields without a default, the others set one by one:
    keyword arguments to a class are gathered in a dict and matched to the parameters again
    (slot_tp_init), which cost as much as making the incident itself (a storm does it per alert)."""
    sev_impact, sev_urgency = SEVERITY_IMPACT_URGENCY[ev.severity]
    impact, urgency = impact or sev_impact, urgency or sev_urgency
    t = ev.time
    inc = Incident(title, now)
    inc.impact = impact
    inc.urgency = urgency
    inc.severity = _OPENED_SEVERITY[ev.severity]
    inc.event_count = 1
    inc.first_occurrence = inc.last_occurrence = t
    inc.updated_at = t if t > now else now
    inc.linked_events = 1  # timeline_limit is at least 1
    inc.description = description
    inc.host = host
    inc.service = service
    inc.category = category
    inc.assignment_group = assignment_group
    inc.key = key
    inc.rule = rule
    priority = inc.priority = settings.priority(impact, urgency)
    major = inc.major = major or is_major(settings, priority)
    changes.new.append(inc)
    entries = changes.entries
    detail = _OPEN_DETAILS.get((priority, impact, urgency, major)) if type(major) is bool else None
    if detail is None or type(impact) is not int or type(urgency) is not int:  # not True == 1
        detail = _open_detail(priority, impact, urgency, major)
    entries.append(LogEntry(now, actor, "open", detail[0], inc, 0, 0, detail[1]))  # positional: no dict
    entries.append(LogEntry(t, actor, "event", _event_summary(ev), inc))
    changes.opened_by[priority] = changes.opened_by.get(priority, 0) + 1
    if changes.notifying:
        changes.notify("open", inc)
        if major:
            changes.notify("major", inc)
    if settings.escalation:
        schedule(inc, settings)
    return inc


# The "open" entry's detail and its JSON text, by (priority, impact, urgency, major): a storm opens
# thousands of incidents with a handful of these. The dicts are shared: an entry's detail is never
# changed once made.
_OPEN_DETAILS: dict[tuple[str, int, int, bool], tuple[dict[str, Any], str]] = {}


def _open_detail(priority: str, impact: int, urgency: int, major: bool) -> tuple[dict[str, Any], str]:
    detail = {"priority": priority, "impact": impact, "urgency": urgency, "major": major}
    made = detail, orjson.dumps(detail).decode()
    exact = type(impact) is int and type(urgency) is int and type(major) is bool  # keys equal as JSON too
    if exact and len(_OPEN_DETAILS) < 1024:  # the priority matrix is 3x3; a bound all the same
        _OPEN_DETAILS[(priority, impact, urgency, major)] = made
    return made


def link_event(
    settings: IncidentSettings,
    changes: Changes,
    inc: Incident,
    ev: Event,
    actor: str,
    impact: int | None = None,
    urgency: int | None = None,
) -> None:
    """Count the event, keep it in the timeline (up to the limit) and raise the priority it implies."""
    inc.event_count += 1
    if inc.first_occurrence is None or ev.time < inc.first_occurrence:
        inc.first_occurrence = ev.time
    if inc.last_occurrence is None or ev.time > inc.last_occurrence:
        inc.last_occurrence = ev.time
    if SEVERITY_RANK[ev.severity] > SEVERITY_RANK[inc.severity]:  # inc.severity: text
        inc.severity = ev.severity.value
    if inc.linked_events < settings.timeline_limit:
        inc.linked_events += 1
        changes.log(inc, ev.time, actor, "event", **_event_summary(ev))
    else:
        changes.touch(inc, ev.time)
    if ev.severity is not Severity.CLEAR:
        sev_i, sev_u = SEVERITY_IMPACT_URGENCY[ev.severity]
        raise_priority(settings, changes, inc, ev.time, actor, impact or sev_i, urgency or sev_u)


def raise_priority(
    settings: IncidentSettings,
    changes: Changes,
    inc: Incident,
    now: float,
    actor: str,
    impact: int,
    urgency: int,
) -> None:
    """Priority only goes up automatically; lowering it is a person's decision."""
    new_impact, new_urgency = min(inc.impact, impact), min(inc.urgency, urgency)
    if new_impact == inc.impact and new_urgency == inc.urgency:
        return
    new_priority = settings.priority(new_impact, new_urgency)
    old = inc.priority
    inc.impact, inc.urgency = new_impact, new_urgency
    changes.touch(inc, now)
    if new_priority >= old:  # 'P1' < 'P2': a string compare orders priorities
        return
    inc.priority = new_priority
    changes.log(inc, now, actor, "priority", **{"from": old, "to": new_priority})
    changes.notify("update", inc)
    if not inc.major and is_major(settings, new_priority):
        inc.major = True
        changes.log(inc, now, actor, "major", reason=f"priority {new_priority}")
        changes.notify("major", inc)
    schedule(inc, settings)


def transition(
    settings: IncidentSettings,
    changes: Changes,
    inc: Incident,
    to: Status,
    now: float,
    actor: str,
    action: str,
    **detail: Any,
) -> None:
    """Move along the state machine, or raise IllegalTransition (nothing changed)."""
    if to not in TRANSITIONS[inc.status]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[inc.status])) or "none (final)"
        raise IllegalTransition(inc, action, f"allowed next statuses: {allowed}")
    old = inc.status
    inc.status = to
    starts_work = to is Status.ACKNOWLEDGED or (
        old is Status.NEW and to in (Status.IN_PROGRESS, Status.ON_HOLD)
    )
    if starts_work and inc.acknowledged_at is None:
        inc.acknowledged_at = now
        TIME_TO_ACK.observe(max(0.0, now - (inc.reopened_at or inc.opened_at)))
    if to is Status.RESOLVED:
        inc.resolved_at = now
        TIME_TO_RESOLVE.observe(max(0.0, now - (inc.reopened_at or inc.opened_at)))
    elif to is Status.CLOSED:
        inc.closed_at = now
    elif to is Status.NEW:  # reopen: a new round of acknowledgement and escalation
        inc.reopened_at = now
        inc.reopen_count += 1
        inc.acknowledged_at = inc.resolved_at = None
        inc.resolution_code = inc.resolution_notes = ""
        inc.escalation_level = 0
        REOPENED.inc()
    changes.log(inc, now, actor, action, **{"from": old.value, "to": to.value}, **detail)
    kind = {Status.RESOLVED: "resolve", Status.CLOSED: "close"}.get(to, "update")
    changes.notify(kind, inc)
    schedule(inc, settings)


def escalate_due(
    settings: IncidentSettings, changes: Changes, inc: Incident, now: float
) -> list[EscalationStep]:
    """Take every escalation step that is due at `now`; returns them (for their notify targets)."""
    taken: list[EscalationStep] = []
    for step in settings.escalation.get(inc.priority, ()):
        if step.level <= inc.escalation_level or not _still_applies(step, inc):
            continue
        if _base(inc) + step.after > now:
            break
        inc.escalation_level = step.level
        ESCALATIONS.labels(str(step.level)).inc()
        changes.log(inc, now, "system", "escalate", level=step.level, after=step.after, until=step.until)
        changes.notify("escalate", inc, step.notify)
        taken.append(step)
    schedule(inc, settings)
    return taken


def schedule(inc: Incident, settings: IncidentSettings) -> None:
    """Recompute the incident's deadlines (next escalation, auto-close) from its state and the policy."""
    inc.next_escalation_at = None
    if inc.status is not Status.CLOSED:
        for step in settings.escalation.get(inc.priority, ()):
            if step.level > inc.escalation_level and _still_applies(step, inc):
                inc.next_escalation_at = _base(inc) + step.after
                break
    if inc.status is Status.RESOLVED and inc.resolved_at is not None:
        inc.close_at = inc.resolved_at + settings.close_after
    else:
        inc.close_at = None


def deadline(inc: Incident) -> float | None:
    escalate, close = inc.next_escalation_at, inc.close_at
    if escalate is None:
        return close
    return escalate if close is None or escalate < close else close


def _still_applies(step: EscalationStep, inc: Incident) -> bool:
    if step.until == "acknowledged":
        return inc.status is Status.NEW
    return inc.active


def _base(inc: Incident) -> float:
    return inc.reopened_at or inc.opened_at


def is_major(settings: IncidentSettings, priority: str) -> bool:
    return settings.major_priority is not None and priority <= settings.major_priority


def _event_summary(ev: Event) -> dict[str, Any]:
    return {
        "event_id": ev.id,
        "host": ev.host,
        "type": ev.type,
        "severity": _SEVERITY_TEXT[ev.severity],
        "resource": ev.resource,
        "message": ev.message[:500],
    }
