"""Property-based fuzzing of the MQTT decoder (no broker): any payload on any matching topic is
either an event that passed the door or `Malformed` with a bounded reason, never anything else,
so the connection can always count, acknowledge and carry on."""

from __future__ import annotations

import time

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.mqtt.decode import Decoder, Malformed
from collectors.mqtt.settings import parse_settings
from correlator import door

SUBS = [
    {"name": "ev", "topic": "ev/{host}/events", "defaults": {"type": "t"}},
    {
        "name": "mapped",
        "topic": "mapped/#",
        "fields": {"host": "$.dev.name", "type": "$.kind", "severity": "$.lvl", "time": "$.ts"},
        "attributes": {"room": "$.dev.room"},
    },
    {"name": "text", "topic": "text/{host}/{type}", "format": "text"},
    {"name": "temp", "topic": "temp/{host}/{resource}", "format": "text", "telemetry": {"warning": 70}},
]
DECODERS = [
    Decoder(s)
    for s in parse_settings({"brokers": [{"host": "127.0.0.1"}], "subscriptions": SUBS}).subscriptions
]
REASONS = {
    "malformed_json",
    "not_object",
    "not_utf8",
    "invalid_field",
    "not_a_number",
    "too_large",
    "too_many_series",
    "too_deep",
    "bad_text",
    "time_out_of_range",
    "invalid",
}

texts = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "é"]), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(
    ["host", "type", "severity", "time", "message", "attributes", "dev", "kind", "lvl", "ts"]
)
payloads = st.one_of(
    st.binary(max_size=100),
    st.dictionaries(fields, json_values, max_size=5).map(orjson.dumps),
    st.integers(1, 1100).map(lambda n: b'{"attributes":' + b'{"a":' * n + b"1" + b"}" * n + b"}"),
)


@settings(max_examples=300, deadline=None)
@given(
    decoder=st.sampled_from(DECODERS),
    level=st.text(alphabet="abc-\x00é", min_size=1, max_size=5),
    payload=payloads,
)
def test_any_payload_is_an_admitted_event_or_malformed_with_a_bounded_reason(decoder, level, payload):
    topic = decoder.sub.topic.filter.replace("+", level).replace("#", level)
    levels = decoder.sub.topic.match(topic)
    assert levels is not None
    try:
        ev = decoder.decode(topic, levels, payload, time.time())
    except Malformed as e:
        assert e.reason in REASONS
        return
    if ev is not None:
        door.check(ev)  # what the decoder let through passes the door
        orjson.dumps([ev])  # and the journal can write it
