"""Incidents in a store other processes write too (the cluster): a change made by one process is
never written over by another's older copy, and a key opened elsewhere is updated, not opened again."""

from __future__ import annotations

from pathlib import Path

from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.incidents.backend import create_store
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.responses import IncidentRequest

T0 = 1_800_000_000.0


def service(data: Path, clock: Clock) -> IncidentService:
    svc = IncidentService(create_store(None, data), parse_settings({}), clock)
    svc.shared = True
    return svc


def request(action: str, n: int) -> IncidentRequest:
    ev = Event(f"e{n}", T0 + n, T0 + n, "test", "r1", "cpu.high", Severity.MAJOR)
    return IncidentRequest(action, "cpu:r1", ev, "cpu")


async def test_a_change_made_elsewhere_is_not_written_over(tmp_path: Path) -> None:
    clock = Clock(T0)
    worker, api, other = service(tmp_path, clock), service(tmp_path, clock), service(tmp_path, clock)
    for svc in (worker, api, other):
        await svc.open()  # all three before the incident exists
    try:
        [inc] = await worker.apply([request("open", 1)])
        acked = await api.act(inc.id, "ack", "noc-operator", {})  # through the API of another process
        assert acked.status.value == "acknowledged"
        clock.advance_to(T0 + 10)
        await worker.apply([request("open", 2)])  # the key fires again on the worker
        stored, _ = await api.get(inc.id)
        assert stored.status.value == "acknowledged"  # not written back to "new"
        # a worker that never saw the incident updates it instead of opening a second one
        assert await other.apply([request("open", 3)]) == []
        assert [i.id for i in (await worker.store.latest_for_keys(["cpu:r1"]))] == [inc.id]
    finally:
        for svc in (worker, api, other):
            await svc.close()
