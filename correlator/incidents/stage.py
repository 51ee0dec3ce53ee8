"""The incidents pipeline stage: carries out the IncidentRequests that correlation appended.

Runs after correlation and before the store. Events pass through unchanged; the requests of a
batch are applied together (one transaction), then any due escalation or auto-close is run at the
batch's clock time, so replay and tests see deadlines fire in event time. The stage does not wait
for the commit: it leaves it in `ctx.pending`, which the runner awaits before the batch's ack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlator.event import Event
from correlator.responses import IncidentRequest

if TYPE_CHECKING:  # the pipeline package imports this stage
    from correlator.incidents.service import IncidentService
    from correlator.pipeline import StageContext


class IncidentStage:
    name = "incidents"

    def __init__(self, service: IncidentService) -> None:
        self._service = service

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        requests = [r for r in ctx.responses if isinstance(r, IncidentRequest)]
        if requests:
            ctx.opened.extend(await self._service.apply(requests, event_time=not ctx.live))
        await self._service.run_due(ctx.clock.now(), wait=False)
        pending = self._service.pending
        if pending is not None:
            ctx.pending = pending
        return events
