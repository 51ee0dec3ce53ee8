"""Property-based fuzzing of the journal read-back: whatever bytes a journal item holds, decoding
never raises, every event that comes out is one the stages, the API and /metrics can take, the
valid events of the item are kept and the rest is set aside as `undecodable`."""

from __future__ import annotations

import json
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, generate_latest

from correlator import deadletter, door
from correlator.event import Event, Severity
from correlator.noisiest import NoisiestStage
from correlator.queue import QueueItem
from correlator.runner import _decode_leniently
from tests.unit.collectors import test_ingest_fuzz as ingest_fuzz

T0 = 1_800_000_000.0
REASONS = {door.INVALID, door.TOO_DEEP, door.TOO_LARGE, door.BAD_TEXT, door.BAD_TIME}
FUZZ = settings(max_examples=150, deadline=None)

WIRE = Event("w", T0, T0, "webhook:generic", "h", "t", Severity.MAJOR).to_dict()

# What a journal written by another version, or damaged, may hold in each wire field.
wire_values = st.one_of(
    ingest_fuzz.json_values,
    ingest_fuzz.texts,
    ingest_fuzz.depths,
    st.floats(),  # NaN and infinities too: the standard library reads them back
    st.sampled_from([None, True, 0, -1, 253402304399.0, -62135596801.0, "critical", "CRITICAL", ""]),
)
mutated = st.fixed_dictionaries({}, optional={k: wire_values for k in WIRE}).map(
    lambda over: {**WIRE, **over}
)
missing = st.sets(st.sampled_from(sorted(WIRE)), min_size=1).map(
    lambda gone: {k: v for k, v in WIRE.items() if k not in gone}
)
docs = mutated | missing | ingest_fuzz.json_values


def usable(ev: Event) -> None:
    """What the stages, the API and the metrics do with an event: none of it may raise."""
    door.check(ev, check_time=False)
    orjson.dumps(ev)
    api = ev.to_api()
    assert all(isinstance(api[k], str) for k in ("time", "received", "last_seen"))
    assert ev.severity.rank >= 0 and math.isfinite(ev.time)
    stage = NoisiestStage()
    stage.count(ev.host, ev.time)
    stage.count("other", ev.time)
    stage.top(ev.time)


@FUZZ
@given(doc=docs)
def test_a_read_back_event_is_valid_or_refused_with_a_bounded_reason(doc):
    try:
        ev = door.from_wire(doc)
    except door.Refused as e:
        assert e.reason in REASONS
        return
    usable(ev)


@FUZZ
@given(items=st.lists(st.tuples(st.booleans(), docs), max_size=6), stdlib=st.booleans())
def test_any_journal_item_decodes_into_valid_events_and_dead_letters(items, stdlib):
    good_ids = []
    batch = []
    for n, (good, doc) in enumerate(items):
        if good:
            doc = {**WIRE, "id": f"good-{n}", "host": f"sw{n}"}
            good_ids.append(doc["id"])
        batch.append(doc)
    # The standard library writes NaN and lone surrogates, which orjson refuses to read back.
    payload = json.dumps(batch, default=str).encode() if stdlib else orjson.dumps(batch, default=str)
    item = QueueItem(1, payload, len(batch), redelivered=True)
    try:  # the runner's way: the fast path, then the lenient one
        events, dead = item.decode(), []
    except Exception as e:
        events, dead = _decode_leniently(item, e)
    for ev in events:
        usable(ev)
    assert set(good_ids) <= {ev.id for ev in events}
    assert all(d.reason == deadletter.UNDECODABLE for d in dead)
    assert len(events) + len(dead) == len(batch) or (len(dead) == 1 and not events)
    for d in dead:  # each is a row any store takes
        assert deadletter.text(d.raw, len(d.raw) + 1) == d.raw and "\x00" not in d.error


def test_metrics_render_after_the_fuzz():
    assert b"correlator_ci_events_recent" in generate_latest(REGISTRY)
