"""The level-2 clock: due timers in time order, equal deadlines in the order they were set."""

from __future__ import annotations

from correlator.clock import Clock


def test_equal_deadlines_fire_in_the_order_they_were_set() -> None:
    clock = Clock(0.0)
    fired: list[str] = []
    clock.call_at(10.0, lambda now: fired.append("a"))
    clock.call_at(5.0, lambda now: fired.append("early"))
    clock.call_at(10.0, lambda now: fired.append("b"))
    assert clock.advance_to(10.0) == 3
    assert fired == ["early", "a", "b"]


def test_a_rescheduled_timer_fires_once_as_if_set_anew() -> None:
    clock = Clock(0.0)
    fired: list[tuple[str, float]] = []
    moved = clock.call_at(10.0, lambda now: fired.append(("moved", now)))
    clock.call_at(20.0, lambda now: fired.append(("other", now)))
    clock.reschedule(moved, 20.0)  # later than "other", set for the same time: fires after it
    assert clock.pending() == 2
    assert clock.next_deadline() == 20.0  # the stale entry at 10 is not a deadline
    assert clock.advance_to(15.0) == 0
    assert clock.advance_to(30.0) == 2
    assert fired == [("other", 20.0), ("moved", 20.0)]


def test_a_cancelled_timer_rescheduled_runs_again_and_a_fired_one_can_be_reused() -> None:
    clock = Clock(0.0)
    fired: list[float] = []
    timer = clock.call_at(10.0, fired.append)
    timer.cancel()
    clock.reschedule(timer, 12.0)
    clock.advance_to(12.0)
    clock.reschedule(timer, 14.0)
    clock.reschedule(timer, 13.0)  # earlier than before: only the last deadline counts
    clock.advance_to(20.0)
    assert fired == [12.0, 13.0]
    assert clock.pending() == 0
