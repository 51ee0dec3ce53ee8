"""The Problem management pipeline stage: runs after incidents on the incidents the batch opened.

Known errors are matched against each new incident's opening event, and every (re)opening is
counted under its signature for recurrence detection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlator.event import Event
from correlator.responses import IncidentRequest

if TYPE_CHECKING:
    from correlator.incidents.model import Incident
    from correlator.pipeline import StageContext
    from correlator.problems.service import ProblemService


class ProblemStage:
    name = "problems"

    def __init__(self, service: ProblemService) -> None:
        self._service = service

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        if ctx.opened:
            first: dict[str, Event] | None = None

            def event_of(inc: Incident) -> Event | None:
                """The event of the batch's first request for the incident's key: looked up only
                when a known error may match, built once then."""
                nonlocal first
                if first is None:
                    first = {}
                    for r in ctx.responses:
                        if isinstance(r, IncidentRequest):
                            first.setdefault(r.key, r.event)
                return first.get(inc.key or "")

            await self._service.count_openings(ctx.opened, event_of)
        return events
