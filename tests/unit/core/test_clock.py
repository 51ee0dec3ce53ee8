"""The correlation clock: timers fire in order, at their own deadline, only when time is advanced."""

from __future__ import annotations

from correlator.clock import Clock


def test_timers_fire_in_time_order_at_their_deadline():
    clock = Clock(100.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(130.0, lambda now: seen.append(("b", now)))
    clock.call_at(110.0, lambda now: seen.append(("a", now)))
    clock.call_at(200.0, lambda now: seen.append(("c", now)))
    assert clock.advance_to(150.0) == 2
    assert seen == [("a", 110.0), ("b", 130.0)]
    assert clock.now() == 150.0


def test_time_never_goes_backward():
    clock = Clock(100.0)
    clock.advance_to(50.0)
    assert clock.now() == 100.0


def test_cancelled_timer_does_not_fire():
    clock = Clock(0.0)
    fired: list[float] = []
    t = clock.call_at(5.0, fired.append)
    t.cancel()
    assert clock.next_deadline() is None
    clock.advance_to(10.0)
    assert fired == []


def test_timer_scheduled_by_a_timer_fires_in_the_same_advance():
    clock = Clock(0.0)
    fired: list[float] = []

    def first(now: float) -> None:
        fired.append(now)
        clock.call_at(now + 1.0, fired.append)

    clock.call_at(1.0, first)
    clock.advance_to(5.0)
    assert fired == [1.0, 2.0]


async def test_pipeline_runs_every_stage_even_when_a_stage_drops_all_events():
    from correlator.pipeline import Pipeline, StageContext

    seen: list[str] = []

    class DropAll:
        name = "drop"

        async def __call__(self, events, ctx):
            ctx.responses.append("asked")  # e.g. an incident request for a dropped event
            return []

    class Consumer:
        name = "consumer"

        async def __call__(self, events, ctx):
            seen.extend(ctx.responses)
            return events

    ctx = StageContext(Clock(0.0), live=False)
    from correlator.event import Event

    assert await Pipeline([DropAll(), Consumer()]).run([Event("i", 1.0, 1.0, "s", "h", "T")], ctx) == []
    assert seen == ["asked"]
