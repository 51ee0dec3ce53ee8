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


def test_a_timer_moved_later_keeps_the_order_of_the_moment_it_was_moved() -> None:
    clock = Clock(0.0)
    fired: list[str] = []
    moved = clock.call_at(5.0, lambda now: fired.append(f"moved@{now:g}"))
    clock.call_at(20.0, lambda now: fired.append("set before"))
    clock.reschedule(moved, 10.0)
    clock.reschedule(moved, 20.0)  # later twice: no new heap entry, the order is taken now
    clock.call_at(20.0, lambda now: fired.append("set after"))
    assert clock.pending() == 3
    assert clock.next_deadline() == 20.0
    assert clock.advance_to(19.0) == 0
    assert clock.advance_to(20.0) == 3
    assert fired == ["set before", "moved@20", "set after"]


def test_a_timer_moved_later_then_earlier_or_cancelled_fires_at_most_once() -> None:
    clock = Clock(0.0)
    fired: list[float] = []
    timer = clock.call_at(10.0, fired.append)
    clock.reschedule(timer, 30.0)
    clock.reschedule(timer, 15.0)  # earlier than its entry at 10? no: still later, entry kept
    clock.reschedule(timer, 8.0)  # earlier than its entry: a new entry, the one at 10 goes stale
    clock.advance_to(40.0)
    assert fired == [8.0]
    other = clock.call_at(50.0, fired.append)
    clock.reschedule(other, 60.0)
    other.cancel()
    assert clock.pending() == 0 and clock.next_deadline() is None
    clock.reschedule(other, 70.0)  # a cancelled timer set again runs
    clock.advance_to(100.0)
    assert fired == [8.0, 70.0]
