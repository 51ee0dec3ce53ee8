"""Pipeline stages of Change management: maintenance windows before correlation, linkage after incidents.

MaintenanceStage tags events covered by a change window and, by policy, sets them aside (stored but
not correlated) or downgrades them. ChangeLinkStage links incidents opened in the batch to a change
that may have caused them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.metrics import Counter

from correlator.event import Event, Severity

if TYPE_CHECKING:
    from correlator.changes.service import ChangeService
    from correlator.pipeline import StageContext

MAINTENANCE = Counter(
    "correlator_maintenance_events_total",
    "Events inside a change window, by what was done (tagged, suppressed, downgraded)",
    ["action"],
)
SOURCE = "changes"  # the change lifecycle events themselves are never covered


class MaintenanceStage:
    name = "maintenance"

    def __init__(self, service: ChangeService) -> None:
        self._service = service
        self._next_check = 0.0

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        now = ctx.clock.now()
        # Calendar windows open on time, checked once a second of the clock: wall time live, event
        # time in replay (where the clock stands at the previous batch's end).
        if now >= self._next_check:
            self._next_check = now + 1.0
            await self._service.run_due(now)
        scope = self._service.scope
        if not scope:
            return events
        s = self._service.settings
        out: list[Event] = []
        tagged = suppressed = downgraded = 0
        for ev in events:
            hit = scope.lookup(ev) if ev.source != SOURCE else None
            if hit is None:
                out.append(ev)
                continue
            c = hit.change
            policy = (c.policy or s.policy) if hit.direct else (c.dependents_policy or s.dependents_policy)
            if policy == "ignore":
                out.append(ev)
                continue
            ev.attributes = {**ev.attributes, "change_id": c.human_id, "maintenance": policy}
            tagged += 1
            if ev.severity is Severity.CLEAR:
                out.append(ev)  # a clear still resolves what opened before the window
            elif policy == "suppress":
                ctx.set_aside.append(ev)
                suppressed += 1
            else:
                if policy == "downgrade" and ev.severity.rank > s.downgrade_to.rank:
                    ev.attributes["original_severity"] = ev.severity.value
                    ev.severity = s.downgrade_to
                    downgraded += 1
                out.append(ev)
        if tagged:
            MAINTENANCE.labels("tagged").inc(tagged)
            MAINTENANCE.labels("suppressed").inc(suppressed)
            MAINTENANCE.labels("downgraded").inc(downgraded)
        return out


class ChangeLinkStage:
    name = "change-link"

    def __init__(self, service: ChangeService) -> None:
        self._service = service

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        if ctx.opened:
            await self._service.link_incidents(ctx.opened)
        return events
