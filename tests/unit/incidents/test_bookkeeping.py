"""The service's in-memory bookkeeping (indexes, active-priority counts, deadlines), kept up to
date commit by commit, is what rebuilding it from all the unclosed incidents gives."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.clock import Clock
from correlator.event import Severity
from correlator.incidents.model import Status
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.stage import IncidentStage
from correlator.incidents.store import Rows
from correlator.pipeline import StageContext
from tests.unit.incidents.conftest import T0, request

POLICY = parse_settings(
    {
        "major_priority": "P2",
        "close_after": "10m",
        "reopen_window": "5m",
        "escalation": {
            p: [{"after": "2m"}, {"after": "7m", "until": "resolved"}] for p in ("P1", "P2", "P3")
        },
    }
)


class MemoryStore:
    """Keeps nothing: the bookkeeping under test is the service's own."""

    async def open(self) -> None: ...
    async def last_id(self) -> int:
        return 0

    async def reserve_ids(self, ceiling: int) -> None: ...
    async def load_unclosed(self) -> list[Any]:
        return []

    async def write(self, rows: Rows, retry: bool = False) -> None: ...
    async def close(self) -> None: ...


def bookkeeping(svc: IncidentService) -> tuple[Any, ...]:
    heap = svc._due_heap
    valid = sorted(entry for entry in heap if svc._due.get(entry[1]) == entry[0])
    return dict(svc._by_id), dict(svc._due), dict(svc._active), dict(svc._active_count), svc._next_due, valid


ACTIONS = st.tuples(
    st.sampled_from(["open", "open", "update", "resolve"]),
    st.integers(0, 5),  # the key
    st.sampled_from([Severity.CRITICAL, Severity.MAJOR, Severity.WARNING, Severity.INFO]),
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.tuples(st.integers(0, 400), st.lists(ACTIONS, max_size=8)), max_size=12))
def test_commit_by_commit_bookkeeping_equals_a_rebuild(batches):
    asyncio.run(_run(batches))


async def _run(batches: list[tuple[int, list[tuple[str, int, Severity]]]]) -> None:
    clock = Clock(T0)
    svc = IncidentService(MemoryStore(), POLICY, clock)  # type: ignore[arg-type]
    await svc.open()
    stage = IncidentStage(svc)
    # Every incident the service handed out, gathered outside the maps under test (by object),
    # so one that never reached them is missed by the service, not by the expectation too.
    svc.outcomes = []
    seen: dict[int, Any] = {}
    t = T0
    for step, actions in batches:
        t += step
        clock.advance_to(t)
        reqs = [
            request(action, t, key=f"k{k}", severity=Severity.CLEAR if action == "resolve" else sev)
            for action, k, sev in actions
        ]
        ctx = StageContext(clock, live=True, responses=list(reqs))
        await stage([r.event for r in reqs], ctx)
        if ctx.pending is not None:
            assert await ctx.pending
        for _, _, inc in svc.outcomes:
            if inc is not None:
                seen[id(inc)] = inc
        svc.outcomes.clear()
        for inc in ctx.opened or ():
            seen[id(inc)] = inc
        kept = bookkeeping(svc)
        assert kept[0] == {inc.id: inc for inc in seen.values() if inc.status is not Status.CLOSED}
        svc._refresh()  # from scratch, over every unclosed incident
        assert bookkeeping(svc) == kept
    await svc.close()
