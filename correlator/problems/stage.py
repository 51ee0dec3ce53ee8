"""The Problem management pipeline stage: runs after incidents on the incidents the batch opened.

Known errors are matched against each new incident's opening event, and every (re)opening is
counted under its signature for recurrence detection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlator.event import Event
from correlator.responses import IncidentRequest

if TYPE_CHECKING:
    from correlator.pipeline import StageContext
    from correlator.problems.service import ProblemService


class ProblemStage:
    name = "problems"

    def __init__(self, service: ProblemService) -> None:
        self._service = service

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        if ctx.opened:
            first: dict[str, Event] = {}
            for r in ctx.responses:
                if isinstance(r, IncidentRequest):
                    first.setdefault(r.key, r.event)
            await self._service.on_opened([(inc, first.get(inc.key or "")) for inc in ctx.opened])
        return events
