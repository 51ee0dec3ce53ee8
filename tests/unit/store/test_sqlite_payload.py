"""The SQLite event store serialises a batch through `dumps_events`: the same bytes (and the same
refusal) as orjson serialising the events themselves, which it did before."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Event, Severity, dumps_events

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
times = st.floats(-1e12, 1e12, allow_nan=False)
events = st.builds(
    Event,
    st.text(min_size=1, max_size=8),
    times,
    times,
    st.text(max_size=6),
    st.text(max_size=6),
    st.text(max_size=6),
    st.sampled_from(list(Severity)),
    st.text(max_size=6),
    st.text(max_size=20),
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    st.text(max_size=8),
    st.integers(1, 2**40),
    times,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=5))
def test_the_wire_form_serialises_to_the_same_bytes_as_the_events(batch):
    assert dumps_events(batch) == orjson.dumps(batch)


def _nested(depth: int) -> Any:
    v: Any = []
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize(
    "attributes",
    [{"s": "\ud800"}, {"n": 2**64}, {"o": object()}, *({"deep": _nested(n)} for n in range(250, 256))],
    ids=["surrogate", "big-int", "object", *(f"nested-{n}" for n in range(250, 256))],
)
def test_an_unserialisable_event_is_refused_alike(attributes: dict[str, Any]):
    batch = [Event("e", 1.0, 1.0, "s", "h", "t", attributes=attributes)]
    outcomes = []
    for dump in (dumps_events, orjson.dumps):
        try:
            outcomes.append(dump(batch))
        except orjson.JSONEncodeError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]
