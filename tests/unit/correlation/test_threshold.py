"""threshold: N events per key within a sliding window fire once, then stay quiet (SEC-like)."""

from __future__ import annotations

import asyncio

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlation import actions
from correlator.correlation.threshold import Threshold
from correlator.event import Event

from .support import E, Run, by, m, types


def auth_failures(count: int = 3, within: float = 60.0) -> Threshold:
    return Threshold(
        "auth-storm",
        m(type="authenticationFailure"),
        by("host"),
        count=count,
        within=within,
        hooks={"fire": [actions.emit("auth.storm")]},
    )


async def test_three_failures_within_a_minute_fire_once() -> None:
    run = Run(auth_failures())
    out = await run.feed(
        E(0, "authenticationFailure"), E(20, "authenticationFailure"), E(40, "authenticationFailure")
    )
    assert types(out) == ["authenticationFailure"] * 3 + ["auth.storm"]
    storm = out[-1]
    assert storm.attributes["correlation"]["count"] == 3
    assert storm.attributes["correlation"]["first"] == 0
    assert storm.attributes["cause"] == out[2].id


async def test_spread_out_events_never_fire_the_window_slides() -> None:
    run = Run(auth_failures())
    out = await run.feed(*(E(t, "authenticationFailure") for t in (0, 40, 80, 120, 160)))
    assert "auth.storm" not in types(out)


async def test_sliding_window_fires_once_the_oldest_event_has_dropped_out() -> None:
    run = Run(auth_failures())
    out = await run.feed(*(E(t, "authenticationFailure") for t in (0, 50, 70, 100)))
    # window [50, 100] holds 3 events: 0 dropped out when 70 arrived (70 - 0 > 60)
    assert types(out).count("auth.storm") == 1
    assert out[-1].attributes["correlation"]["first"] == 50


async def test_an_event_exactly_within_seconds_before_the_newest_still_counts() -> None:
    """The window is closed at its start: [newest - within, newest]."""
    run = Run(auth_failures())
    out = await run.feed(*(E(t, "authenticationFailure") for t in (0, 30, 60)))
    assert types(out).count("auth.storm") == 1
    assert out[-1].attributes["correlation"]["first"] == 0
    run = Run(auth_failures())
    out = await run.feed(*(E(t, "authenticationFailure") for t in (0, 30, 60.001)))
    assert "auth.storm" not in types(out)  # just past the edge: 0 has dropped out


async def test_the_quiet_time_ends_exactly_within_seconds_after_the_first_event() -> None:
    run = Run(auth_failures())
    out = await run.feed(*(E(t, "authenticationFailure") for t in (0, 1, 2, 59.999, 60, 61, 62)))
    storms = [e for e in out if e.type == "auth.storm"]
    # quiet until 60: 59.999 is swallowed, 60 opens the new count (60, 61, 62)
    assert [(s.time, s.attributes["correlation"]["first"]) for s in storms] == [(2, 0), (62, 60)]


async def test_quiet_until_window_from_first_event_ends_then_counts_again() -> None:
    run = Run(auth_failures())
    times = [0, 1, 2, 3, 4, 30, 59, 61, 62, 63]
    out = await run.feed(*(E(t, "authenticationFailure") for t in times))
    storms = [e for e in out if e.type == "auth.storm"]
    # fires on t=2 (0,1,2), quiet until 60, a new count starts at 61 and fires on 63
    assert [s.time for s in storms] == [2, 63]


async def test_keys_count_separately() -> None:
    run = Run(auth_failures(count=2))
    out = await run.feed(
        E(0, "authenticationFailure", "a"),
        E(1, "authenticationFailure", "b"),
        E(2, "authenticationFailure", "a"),
    )
    storms = [e for e in out if e.type == "auth.storm"]
    assert [s.host for s in storms] == ["a"]


async def test_out_of_order_event_within_lateness_counts_at_its_own_time() -> None:
    run = Run(auth_failures(), lateness=10)
    out = await run.feed(
        E(100, "authenticationFailure"), E(95, "authenticationFailure"), E(150, "authenticationFailure")
    )
    # 95 is late by 5 s (allowed): the window [95, 150] holds 3 events
    assert types(out)[-1] == "auth.storm"


async def test_ttl_expiry_forgets_idle_keys() -> None:
    rule = auth_failures()
    run = Run(rule, sweep_every=60)
    await run.feed(E(0, "authenticationFailure", "a"), E(1, "authenticationFailure", "b"))
    assert rule.keys() == 2
    await run.advance(200)
    assert rule.keys() == 0


# -- the state kept per key, checked against the rule's definition --------------------------------
def reference_fires(
    events: list[tuple[float, str]], count: int, within: float
) -> list[tuple[float, str, float]]:
    """SingleWithThreshold as documented, one plain window per key: (time, host, first) per fire."""
    windows: dict[str, tuple[list[float], list[float]]] = {}
    fires = []
    for t, host in events:
        times, quiet = windows.setdefault(host, ([], [0.0]))
        if quiet[0]:
            if t < quiet[0]:
                continue
            quiet[0] = 0.0
        times.append(t)
        while times[0] < times[-1] - within:
            del times[0]
        if len(times) >= count:
            fires.append((t, host, times[0]))
            quiet[0] = times[0] + within
            times.clear()
    return fires


def fires_of(out: list[Event]) -> list[tuple[float, str, float]]:
    return [(e.time, e.host, e.attributes["correlation"]["first"]) for e in out if e.type == "auth.storm"]


streams = st.lists(
    st.tuples(st.floats(min_value=0, max_value=30, allow_nan=False), st.sampled_from("abcdefgh")),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(streams, st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=80))
def test_fires_as_the_definition_says_with_a_snapshot_and_restore_anywhere(
    gaps: list[tuple[float, str]], count: int, cut: int
) -> None:
    """Most keys see one event (a key's state is then that event's time alone): a snapshot taken at
    any point, written and read back, continues exactly where the rule was."""
    t, events = 0.0, []
    for gap, host in gaps:
        t = round(t + gap, 3)
        events.append((t, host))
    evs = [E(t, "authenticationFailure", host) for t, host in events]

    async def go() -> list[Event]:
        first = Run(auth_failures(count))
        out = await first.feed(*evs[:cut])
        saved = orjson.loads(orjson.dumps(first.stage.engines[0].snapshot()))
        engine = auth_failures(count)
        engine.restore(saved)
        return out + await Run(engine, start=first.clock.now()).feed(*evs[cut:])

    assert fires_of(asyncio.run(go())) == reference_fires(events, count, 60.0)


async def test_a_key_seen_once_is_described_and_expires_like_any_other() -> None:
    rule = auth_failures()
    run = Run(rule)
    await run.feed(E(10, "authenticationFailure", "a"))
    assert rule.describe(("a",), 20.0).startswith("threshold: 1 of 3 within")
    assert rule.keys() == 1
    assert rule.expire(69.0) == 0 and rule.expire(70.0) == 1 and rule.keys() == 0


async def test_bound_on_keys_evicts_the_least_recently_seen_key_and_counts() -> None:
    from correlator.correlation.core import BOUND_HITS

    rule = Threshold(
        "tiny-storm", m(type="authenticationFailure"), by("host"), count=2, within=60, max_keys=2
    )
    before = BOUND_HITS.labels("tiny-storm", "max_keys")._value.get()
    run = Run(rule)
    # first events of new keys (kept as a time alone), then a second one for a key that was evicted
    out = await run.feed(*(E(i, "authenticationFailure", host=f"h{i}") for i in range(4)))
    out += await run.feed(E(5, "authenticationFailure", host="h0"))
    assert rule.keys() == 2
    assert sorted(k for k, _ in rule.table.dump()) == [("h0",), ("h3",)]
    assert BOUND_HITS.labels("tiny-storm", "max_keys")._value.get() == before + 3
    assert types(out) == ["authenticationFailure"] * 5  # h0 starts a new count: nothing fires


async def test_count_one_fires_on_each_new_key_then_stays_quiet_and_keeps_the_bound() -> None:
    from correlator.correlation.core import BOUND_HITS

    rule = Threshold(
        "one-storm",
        m(type="authenticationFailure"),
        by("host"),
        count=1,
        within=60,
        max_keys=2,
        hooks={"fire": [actions.emit("auth.storm")]},
    )
    before = BOUND_HITS.labels("one-storm", "max_keys")._value.get()
    run = Run(rule)
    out = await run.feed(*(E(i, "authenticationFailure", host=f"h{i}") for i in range(3)))
    out += await run.feed(
        E(10, "authenticationFailure", host="h2"), E(70, "authenticationFailure", host="h2")
    )
    assert fires_of(out) == [(0, "h0", 0), (1, "h1", 1), (2, "h2", 2), (70, "h2", 70)]
    assert rule.keys() == 2
    assert BOUND_HITS.labels("one-storm", "max_keys")._value.get() == before + 1
    assert [(k, s.times, s.quiet_until, s.last) for k, s in rule.table.dump()] == [
        (("h1",), [], 61, 1),
        (("h2",), [], 130, 70),
    ]
