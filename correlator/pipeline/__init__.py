"""The processing pipeline: an ordered list of small stages with one signature.

`build_pipeline` below is the one place where the stages are assembled; read it to see the data
flow. A stage takes a batch of events and returns the batch to pass on (it may drop, change or add
events). A stage that raises is counted and skipped for that batch: its input passes on unchanged,
so a bug in one rule never loses events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from correlator import metrics
from correlator.clock import Clock
from correlator.config import Config
from correlator.event import Event
from correlator.responses import Response

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StageContext:
    clock: Clock
    live: bool  # False in replay: time comes only from the events
    seq: int = 0  # queue position of the batch (0 in replay)
    responses: list[Response] = field(default_factory=list)  # asked for by correlation, done by later stages


class Stage(Protocol):
    name: str

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]: ...


class Pipeline:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    async def run(self, events: list[Event], ctx: StageContext) -> list[Event]:
        for stage in self.stages:
            if not events:
                break
            try:
                events = await stage(events, ctx)
            except Exception:
                metrics.STAGE_ERRORS.labels(stage.name).inc()
                log.exception("pipeline stage %s failed on a batch of %d events", stage.name, len(events))
        return events

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
        if not ctx.live:
            latest = max(e.time for e in events)
            if latest > ctx.clock.now():
                ctx.clock.advance_to(latest)
        return events


def build_pipeline(config: Config) -> Pipeline:
    """collector -> queue -> [stages below] -> store."""
    from correlator import capacity
    from correlator.availability import AvailabilityStage
    from correlator.noisiest import NoisiestStage

    availability = AvailabilityStage.from_config(config)  # None without a services file
    return Pipeline(
        [
            AdvanceClock(),
            NoisiestStage(),
            capacity.CapacityStage(capacity.configure(capacity.parse_settings(config.capacity))),
            *([availability] if availability else []),
        ]
    )
