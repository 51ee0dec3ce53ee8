"""A batch's openings are numbered alike whether each incident is listed once (the one-pass path a
storm takes) or some are listed again (opened and reopened in one batch)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.clock import Clock
from correlator.incidents.model import Incident
from correlator.problems.model import signature
from correlator.problems.service import ProblemService, _occurrences
from correlator.problems.settings import ProblemSettings
from correlator.records.store import Occurrence

T0 = 1_800_000_000.0


def reference(opened: list[Incident]) -> list[Occurrence]:
    """Each listing numbered back from the incident's last reopening, as a single counting pass."""
    left: dict[int, int] = {}
    for inc in opened:
        left[inc.id] = left.get(inc.id, 0) + 1
    out = []
    for inc in opened:
        left[inc.id] -= 1
        occurrence = max(inc.reopen_count - left[inc.id], 0)
        at = inc.reopened_at if occurrence and inc.reopened_at is not None else inc.opened_at
        out.append(Occurrence(signature(inc.key, inc.rule, inc.host), inc.id, occurrence, at))
    return out


incidents = st.builds(
    lambda i, reopens, reopened: Incident(
        f"t{i}",
        T0 + i,
        id=i,
        key=f"k{i % 3}" if i % 4 else None,
        rule="r",
        host=f"h{i % 2}",
        reopen_count=reopens,
        reopened_at=T0 + 50 if reopened else None,
    ),
    st.integers(1, 6),
    st.integers(0, 3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(pool=st.lists(incidents, min_size=1, max_size=6, unique_by=lambda inc: inc.id), picks=st.data())
def test_occurrences_number_listings_as_the_counting_pass_does(pool, picks):
    listed = picks.draw(st.lists(st.sampled_from(pool), max_size=10))
    assert _occurrences(listed) == reference(listed)


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
    assert records.added == reference(opened)
