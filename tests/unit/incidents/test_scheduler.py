"""The APScheduler job follows the earliest incident deadline; firing it runs what is due."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator.event import Severity
from correlator.incidents import scheduler as incident_scheduler
from tests.unit.incidents.conftest import T0, request

POLICY = {"escalation": {"P1": [{"after": "5m"}]}, "close_after": "1h"}


async def test_job_tracks_the_next_deadline(make_service, clock):
    svc = await make_service(POLICY)
    sched = AsyncIOScheduler(timezone="UTC")
    sched.start(paused=True)  # started inside the loop; paused so nothing fires on wall time here
    try:
        incident_scheduler.attach(sched, svc, clock)
        assert sched.get_job(incident_scheduler.JOB_ID) is None  # nothing due
        await svc.apply([request("open", T0, severity=Severity.CRITICAL)])
        job = sched.get_job(incident_scheduler.JOB_ID)
        assert job.next_run_time == datetime.fromtimestamp(T0 + 300, UTC)
        clock.advance_to(T0 + 60)
        await svc.apply([request("resolve", T0 + 60)])
        job = sched.get_job(incident_scheduler.JOB_ID)
        assert job.next_run_time == datetime.fromtimestamp(T0 + 60 + 3600, UTC)
        # What the job runs: time moves to (at least) the deadline, the incident closes, no job left.
        clock.advance_to(T0 + 60 + 3600)
        await job.func()
        assert (await svc.get(1))[0].status.value == "closed"
        assert sched.get_job(incident_scheduler.JOB_ID) is None
    finally:
        sched.shutdown(wait=False)
