"""Properties over random event streams: batching never changes the output, every pair ends once."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.correlation import actions
from correlator.correlation.absence import Absence
from correlator.correlation.group import Group
from correlator.correlation.pair import Pair
from correlator.correlation.threshold import Threshold
from correlator.event import Event

from .support import E, Run, by, m

streams = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=10, allow_nan=False),  # gap to the previous event
        st.sampled_from(["down", "up", "hb", "x"]),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=60,
)


def rules() -> list:
    return [
        Pair("p", m(type="down"), m(type="up"), by("host"), within=15),
        Threshold(
            "t", m(type="x"), by("host"), count=3, within=20, hooks={"fire": [actions.emit("x.storm")]}
        ),
        Absence("h", m(type="hb"), by("host"), every=25),
        Group("g", m(type="down"), by("host"), group_wait=12),
    ]


def events(stream: list[tuple[float, str, str]]) -> list[Event]:
    t = 0.0
    out = []
    for gap, type_, host in stream:
        t += gap
        out.append(E(round(t, 3), type_, host))
    return out


def play(stream: list[tuple[float, str, str]], batch: int) -> list[tuple[str, float, str]]:
    async def go() -> list[Event]:
        run = Run(*rules())
        evs = events(stream)
        out: list[Event] = []
        for i in range(0, len(evs), batch):
            out += await run.feed(*evs[i : i + batch])
        out += await run.advance((evs[-1].time if evs else 0) + 100)
        return out

    return [(e.type, e.time, e.host) for e in asyncio.run(go())]


@settings(max_examples=60, deadline=None)
@given(streams, st.integers(min_value=1, max_value=7))
def test_batch_size_never_changes_the_output(stream, batch):
    assert play(stream, batch) == play(stream, 10_000)


@settings(max_examples=60, deadline=None)
@given(streams)
def test_every_pending_pair_ends_exactly_once_at_the_right_time(stream):
    out = play(stream, 1)
    for host in "abc":
        pending: float | None = None
        for type_, t, h in out:
            if h != host:
                continue
            if type_ == "down" and pending is None:
                pending = t
            elif type_ == "up" and pending is not None and t <= pending + 15:
                pending = None
            elif type_ == "p.timeout":
                assert pending is not None and t == pending + 15
                pending = None
        assert pending is None  # everything ended by the final advance
