"""The processing pipeline: an ordered list of small stages with one signature.

This module is the stage contract (`StageContext`, `Stage`) and the runner of a list of stages
(`Pipeline`); `build_pipeline` in correlator/pipeline/assemble.py is the one place where the stages
are assembled: read it to see the data flow. A stage takes a batch of events and returns the batch to pass on (it may drop, change or add
events). A stage that raises is counted and skipped for that batch: its input passes on unchanged,
so a bug in one rule never loses events.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from correlator import metrics
from correlator.clock import Clock
from correlator.event import Event
from correlator.responses import Response

if TYPE_CHECKING:
    from correlator.incidents.model import Incident

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StageContext:
    clock: Clock
    live: bool  # False in replay: time comes only from the events
    seq: int = 0  # queue position of the batch (0 in replay)
    responses: list[Response] = field(default_factory=list)  # asked for by correlation, done by later stages
    # Events stored by an earlier batch whose count/last_seen grew (de-duplication); the runner
    # rewrites them with EventStore.fold().
    updates: list[Event] = field(default_factory=list)
    # The repeats folded into them: never stored, but the store keeps their ids with the fold, so
    # a batch delivered again after a crash skips them as it skips stored events.
    folded: list[Event] = field(default_factory=list)
    set_aside: list[Event] = field(default_factory=list)  # skip the remaining stages, still stored
    opened: list[Incident] = field(default_factory=list)  # incidents opened or reopened by this batch
    # A store commit a stage started and did not wait for (incidents): the runner awaits it,
    # shielded, before it stores the batch's events and acks it.
    pending: asyncio.Future[Any] | None = None


class Stage(Protocol):
    name: str

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]: ...


class Pipeline:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    async def run(self, events: list[Event], ctx: StageContext) -> list[Event]:
        for stage in self.stages:
            # No early exit on an empty batch: a stage may have dropped every event yet left
            # responses (incident requests) in ctx for the stages after it.
            try:
                events = await stage(events, ctx)
            except Exception:
                metrics.STAGE_ERRORS.labels(stage.name).inc()
                log.exception("pipeline stage %s failed on a batch of %d events", stage.name, len(events))
        return events + ctx.set_aside if ctx.set_aside else events

    async def flush(self, ctx: StageContext) -> list[Event]:
        """Run what stages produced on their own (level-2 timers) through the stages after them."""
        carry: list[Event] = []
        for stage in self.stages:
            if carry or ctx.responses:
                try:
                    carry = await stage(carry, ctx)
                except Exception:
                    metrics.STAGE_ERRORS.labels(stage.name).inc()
                    log.exception("pipeline stage %s failed on %d timer events", stage.name, len(carry))
            take = getattr(stage, "take_pending", None)
            if take is not None:
                carry.extend(take(ctx))
        return carry + ctx.set_aside if ctx.set_aside else carry

    def find(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    async def open(self, clock: Clock) -> None:
        """Live mode only: stages with persistent state (an `open` method) load it; replay never opens."""
        opened: list[Stage] = []
        try:
            for stage in self.stages:
                opener = getattr(stage, "open", None)
                if opener is not None:
                    await opener(clock)
                    opened.append(stage)
        except BaseException:
            await _close(opened)
            raise

    async def close(self) -> None:
        await _close(self.stages)


async def _close(stages: list[Stage]) -> None:
    for stage in stages:
        closer = getattr(stage, "close", None)
        if closer is not None:
            await closer()


class AdvanceClock:
    """In replay, event time is the only time: move the virtual clock to the batch's latest event."""

    name = "clock"

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        if not ctx.live and events:
            # Sorted rather than max() of a generator: floats sort with a float-only compare, and
            # a batch comes mostly in time order (measured: half the instructions).
            times = [e.time for e in events]
            times.sort()
            latest = times[-1]
            if latest > ctx.clock.now():
                ctx.clock.advance_to(latest)
        return events
