"""The capacity pipeline stage: events that carry a utilisation reading become capacity samples.

Sits in the pipeline after the clock stage; events pass on unchanged (they are also stored), so a
telemetry reading is both in the event store and in `correlator_capacity_utilization_ratio`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlator.capacity.tracker import CapacityTracker
from correlator.event import Event

if TYPE_CHECKING:  # the pipeline package imports this stage
    from correlator.pipeline import StageContext

TYPE_PREFIX = "capacity."


def reading(ev: Event) -> tuple[str, str, str, float] | None:
    """(ci, resource, kind, ratio) of an event, or None when it carries no capacity reading.

    An event carries one when its attributes hold `utilization_ratio`, or `used` and `total`; the
    kind is `attributes.kind`, else the part of the type after `capacity.`, else the type.
    """
    attrs = ev.attributes
    ratio = attrs.get("utilization_ratio")
    if ratio is None:
        used, total = attrs.get("used"), attrs.get("total")
        if used is None or total is None:
            return None
        if not _number(used) or not _number(total) or total <= 0:
            return (ev.host, ev.resource, _kind(ev), -1.0)  # refused (and counted) by record()
        ratio = used / total
    if not _number(ratio):
        ratio = -1.0
    return ev.host, ev.resource, _kind(ev), float(ratio)


def _kind(ev: Event) -> str:
    kind = ev.attributes.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return ev.type.removeprefix(TYPE_PREFIX)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class CapacityStage:
    name = "capacity"

    def __init__(self, tracker: CapacityTracker) -> None:
        self.tracker = tracker

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        record = self.tracker.record
        now = ctx.clock.now()
        for ev in events:
            if "utilization_ratio" not in ev.attributes and "used" not in ev.attributes:
                continue
            r = reading(ev)
            if r is not None:
                record(r[0], r[1], r[2], r[3], min(ev.time, max(ev.received, now)))
        return events
