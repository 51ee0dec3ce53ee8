"""Runs incident deadlines (escalation, auto-close) in the live daemon with APScheduler.

One `date` job always points at the earliest deadline of any incident; the service moves it when
that changes. Deadlines are stored on the incidents, so after a restart the job is set again from
the store and overdue steps run at once. Replay and tests call `run_due` on their own clock.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from correlator.clock import Clock
from correlator.incidents.service import IncidentService

log = logging.getLogger(__name__)

JOB_ID = "incidents:due"
RETRY_SECONDS = 5.0


def attach(scheduler: AsyncIOScheduler, service: IncidentService, clock: Clock) -> None:
    """Keep the scheduler's job on the service's next deadline from now on."""

    def on_deadline(when: float | None) -> None:
        if when is None:
            if scheduler.get_job(JOB_ID) is not None:
                scheduler.remove_job(JOB_ID)
            return
        scheduler.add_job(
            fire,
            "date",
            run_date=datetime.fromtimestamp(when, UTC),
            id=JOB_ID,
            replace_existing=True,
            misfire_grace_time=None,  # a deadline missed while busy still runs, late
        )

    async def fire() -> None:
        clock.advance_to(max(clock.now(), time.time()))  # live mode: the clock is wall time
        try:
            await service.run_due(clock.now())
        except Exception:
            log.exception("incident deadlines failed; retrying in %.0fs", RETRY_SECONDS)
        due = service.next_due
        if due is not None and due <= clock.now():
            on_deadline(clock.now() + RETRY_SECONDS)

    service.on_deadline = on_deadline
    on_deadline(service.next_due)
