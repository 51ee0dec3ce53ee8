"""Response selection for level-2 rules: emit, incident, suppress, notify, annotate.

Each builder returns an `Action` closure that a rule hook runs on its subject event; what it asks for
goes into the `Sink` (events) or becomes an IncidentRequest/NotifyRequest for the later stages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson
from prometheus_client.metrics import Counter

from correlator.correlation.core import Action, Fire, Sink, derived_ids
from correlator.event import Event, Severity
from correlator.metrics import Children
from correlator.responses import IncidentRequest, NotifyRequest

SUPPRESSED = Counter(
    "correlator_correlation_suppressed_total", "Events suppressed by a level-2 rule", ["rule"]
)
SUPPRESSED_BY = Children(SUPPRESSED)

Template = Callable[[Event], str]
_IDS_KEPT = 64  # id makers per emit action (an action belongs to one rule's hook: one, as a rule)


def emit(
    type_: str,
    severity: Severity | None = None,
    message: Template | None = None,
    host: Template | None = None,
) -> Action:
    """A correlated event made from the subject; from an event hook it re-enters level 2."""
    ids: dict[tuple[str, str], Callable[[str], str]] = {}  # by rule and hook: one of each, as a rule

    def act(subject: Event, fire: Fire, sink: Sink) -> None:
        derive = ids.get((fire.rule, fire.hook))
        if derive is None:
            if len(ids) >= _IDS_KEPT:
                ids.clear()
            derive = ids[fire.rule, fire.hook] = derived_ids(fire.rule, fire.hook, "emit", type_)
        ev = Event(
            derive(subject.id),
            subject.time,
            subject.received,
            "correlator",
            host(subject) if host else subject.host,
            type_,
            severity if severity is not None else subject.severity,
            subject.resource,
            message(subject) if message else subject.message,
            {"correlation": fire.info(), "cause": subject.id},
        )
        sink.add_event(ev, fire.from_timer)

    return act


def incident(
    action: Literal["open", "update", "resolve"],
    title: Template | None = None,
    key: Template | None = None,
    description: Template | None = None,
    impact: int | None = None,
    urgency: int | None = None,
    assignment_group: str | None = None,
    major: bool = False,
) -> Action:
    """Ask the incident stage to open/update/resolve the incident of a correlation key.

    The default key is `<rule>:<key values joined by '/'>`, so open (on A) and resolve (on B) of one
    rule meet on the same incident.
    """

    def act(subject: Event, fire: Fire, sink: Sink) -> None:
        k = key(subject) if key else f"{fire.rule}:{fire.key_text()}"
        sink.responses.append(
            IncidentRequest(
                action,
                k,
                subject,
                fire.rule,
                title(subject) if title else "",
                description(subject) if description else "",
                impact,
                urgency,
                assignment_group,
                major,
            )
        )

    return act


def suppress() -> Action:
    """Mark the subject suppressed: later level-2 rules skip it and it carries `suppressed_by`.

    The event is still stored (the operator can see what was suppressed and why); only correlation
    and responses stop.
    """

    def act(subject: Event, fire: Fire, sink: Sink) -> None:
        mark_suppressed(subject, fire.rule, sink, SUPPRESSED_BY(fire.rule))

    return act


def mark_suppressed(subject: Event, rule: str, sink: Sink, counted: Counter) -> None:
    """What `suppress` does, also called by a flapping rule on every event of a flapping key (there
    without a `Fire` per event, and with its counter child resolved once)."""
    subject.attributes["suppressed_by"] = rule
    sink.suppressed = rule
    counted.inc()


def notify(target: str, body: Template | None = None) -> Action:
    """Ask the notify stage to POST to a configured target; the default body is the event as JSON."""

    def act(subject: Event, fire: Fire, sink: Sink) -> None:
        if body is not None:
            payload = body(subject).encode()
        else:
            payload = orjson.dumps({"rule": fire.rule, "hook": fire.hook, "event": subject.to_api()})
        sink.responses.append(NotifyRequest(target, subject, fire.rule, payload))

    return act


def annotate(values: dict[str, Template]) -> Action:
    """Set attributes on the subject from templates."""
    items = tuple(values.items())

    def act(subject: Event, fire: Fire, sink: Sink) -> None:
        attrs = subject.attributes
        for name, tmpl in items:
            attrs[name] = tmpl(subject)

    return act


def literal(text: str) -> Template:
    def render(ev: Event) -> str:
        return text

    return render
