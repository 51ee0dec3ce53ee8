"""The problem stage asks for a batch's opening events only when a known error may match them."""

from __future__ import annotations

import asyncio

from correlator.clock import Clock
from correlator.incidents.model import Incident
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.store import Occurrence

T0 = 1_800_000_000.0


class _Records:
    def __init__(self) -> None:
        self.added: list[Occurrence] = []

    async def add_occurrences(self, occurrences: list[Occurrence]) -> set[tuple[int, int]]:
        self.added.extend(occurrences)
        return {(o.incident_id, o.occurrence) for o in occurrences}


def test_opening_events_are_asked_only_when_a_known_error_may_match() -> None:
    records = _Records()
    svc = ProblemService(records, ProblemSettings(), Clock(T0))  # type: ignore[arg-type]
    asked: list[int] = []

    def event_of(inc: Incident) -> None:
        asked.append(inc.id)

    opened = [Incident("a", T0, id=1, key="k1", rule="r", host="h"), Incident("b", T0, id=2, key="k2")]
    asyncio.run(svc.count_openings(opened, event_of))
    assert asked == []  # no known error: the batch's requests are never searched
    assert [(o.incident_id, o.occurrence, o.at) for o in records.added] == [(1, 0, T0), (2, 0, T0)]
