from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.noisiest import NoisiestStage


def test_top_counts_the_last_hour_only():
    s = NoisiestStage()
    for i in range(10):
        s.count("old", 0.0 + i)
    for i in range(5):
        s.count("r1", 3000.0 + i)
        s.count("r2", 3000.0 + i) if i < 3 else None
    assert s.top(3100.0) == [("old", 10), ("r1", 5), ("r2", 3)]
    assert s.top(3700.0) == [("r1", 5), ("r2", 3)], "the first minute has left the hour"
    assert s.top(3700.0, n=1) == [("r1", 5)]


async def test_stage_and_exporter_count_by_event_time_clamped_to_receipt():
    from correlator.clock import Clock
    from correlator.event import Event
    from correlator.noisiest import NoisiestExporter
    from correlator.pipeline import StageContext

    s = NoisiestStage()
    clock = Clock(1000.0)
    events = [Event(str(i), 990.0, 995.0, "t", f"h{i % 3}", "x") for i in range(9)]
    events.append(Event("late", 1e9, 999.0, "t", "future", "x"))  # a device clock far ahead
    assert await s(events, StageContext(clock, live=True)) == events
    assert await s([], StageContext(clock, live=True)) == []
    exp = NoisiestExporter()
    exp.source = s
    (fam,) = exp.collect()
    assert sorted((x.labels["ci"], x.value) for x in fam.samples) == [
        ("future", 1),
        ("h0", 3),
        ("h1", 3),
        ("h2", 3),
    ]


def test_a_host_that_is_not_text_does_not_break_the_exporter():
    from correlator.noisiest import NoisiestExporter

    s = NoisiestStage()
    for host in ("a", None, "b", 5):
        s.count(host, 10.0)  # type: ignore[arg-type]  # what a trusted journal used to let through
    assert [n for _, n in s.top(20.0)] == [1, 1, 1, 1]
    exp = NoisiestExporter()
    exp.source = s

    class Clock:
        def now(self) -> float:
            return 20.0

    s.clock = Clock()  # type: ignore[assignment]
    (fam,) = exp.collect()
    assert sorted(x.labels["ci"] for x in fam.samples) == ["5", "None", "a", "b"]


def _plain_counts(s: NoisiestStage, events: list, now: float) -> None:
    """The stage's count, one event at a time: what its batch path must equal."""
    for ev in events:
        s.count(ev.host, min(ev.time, max(ev.received, now)))


_times = st.floats(min_value=0.0, max_value=400.0) | st.sampled_from([59.999, 60.0, 119.5, 120.0])


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(_times, _times, st.sampled_from(["a", "b", "c", "d", "e"])), max_size=12),
        max_size=4,
    ),
    now=_times,
    cap=st.integers(min_value=1, max_value=6),
)
def test_batch_counts_equal_one_event_at_a_time(batches: list, now: float, cap: int) -> None:
    import asyncio

    from correlator import noisiest
    from correlator.clock import Clock
    from correlator.event import Event
    from correlator.pipeline import StageContext

    old = noisiest.MAX_HOSTS_PER_BUCKET
    noisiest.MAX_HOSTS_PER_BUCKET = cap
    try:
        fast, plain = NoisiestStage(), NoisiestStage()
        for i, batch in enumerate(batches):
            events = [Event(f"{i}.{j}", t, r, "s", h, "x") for j, (t, r, h) in enumerate(batch)]
            clock = Clock(now + 30.0 * i)
            asyncio.run(fast(events, StageContext(clock, live=False)))
            _plain_counts(plain, events, clock.now())
        assert [(b, list(c.items())) for b, c in fast.buckets] == [
            (b, list(c.items())) for b, c in plain.buckets
        ]
    finally:
        noisiest.MAX_HOSTS_PER_BUCKET = old
