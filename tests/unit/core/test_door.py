"""The door: what an event must satisfy before any collector may emit it, and the reason it is refused."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator import door
from correlator.errors import FieldError
from correlator.event import Event, event_from_dict, iso

NOW = 1_800_000_000.0


def ev(**kw: object) -> Event:
    fields: dict[str, object] = {
        "id": "e1",
        "time": NOW,
        "received": NOW,
        "source": "t",
        "host": "h",
        "type": "x",
    }
    fields.update(kw)
    return Event(**fields)  # type: ignore[arg-type]


def refused(event: Event, check_time: bool = True) -> door.Refused:
    with pytest.raises(door.Refused) as info:
        door.check(event, check_time)
    return info.value


def nested(depth: int) -> object:
    doc: object = "leaf"
    for _ in range(depth):
        doc = {"a": doc}
    return doc


def test_a_plain_event_passes():
    door.check(
        ev(message="Interface Gi0/1 down\twith\ncontrol chars", attributes={"ifIndex": 1, "l": [1, "é"]})
    )


@pytest.mark.parametrize("field", ["host", "type", "resource", "message", "id", "fingerprint"])
def test_nul_in_any_text_field_is_refused(field):
    e = refused(ev(**{field: "a\x00b"}))
    assert (e.field, e.reason) == (field, "bad_text")


@pytest.mark.parametrize("field", ["host", "type", "message"])
def test_lone_surrogate_in_a_text_field_is_refused(field):
    e = refused(ev(**{field: "a\ud800"}))
    assert (e.field, e.reason) == (field, "bad_text")


def test_nul_and_surrogates_in_attribute_keys_and_values_deep_down():
    assert refused(ev(attributes={"k\x00": 1})).reason == "bad_text"
    e = refused(ev(attributes={"labels": {"site": ["ams", "x\x00"]}}))
    assert (e.field, e.reason) == ("attributes.labels.site", "bad_text")
    assert refused(ev(attributes={"a": [{"b": "\udfff"}]})).reason == "bad_text"


def test_a_literal_backslash_u0000_is_text_not_nul():
    door.check(ev(message="C:\\u0000", attributes={"path": "\\u0000", "b": "[[[[{{{{" * 10}))


def test_nesting_is_bounded_at_max_depth():
    door.check(ev(attributes=nested(door.MAX_DEPTH)))  # type: ignore[arg-type]
    e = refused(ev(attributes=nested(door.MAX_DEPTH + 1)))  # type: ignore[arg-type]
    assert e.reason == "too_deep"
    # 300 levels: beyond what orjson will serialise (the poison MQTT message of the issue).
    assert refused(ev(attributes=nested(300))).reason == "too_deep"  # type: ignore[arg-type]


def test_sizes_are_bounded():
    assert refused(ev(host="h" * 257)).reason == "too_large"
    assert refused(ev(message="m" * 16385)).reason == "too_large"
    big = {f"k{i}": "v" * 1000 for i in range(200)}
    e = refused(ev(attributes=big))
    assert (e.field, e.reason) == ("attributes", "too_large")
    assert refused(ev(attributes={"n": 2**70})).reason == "too_large"
    assert refused(ev(host="")).reason == "invalid"


def test_time_window_around_the_receive_time():
    door.check(ev(time=NOW + door.MAX_FUTURE))
    door.check(ev(time=NOW - door.MAX_PAST))
    for t in (NOW + door.MAX_FUTURE + 1, NOW - door.MAX_PAST - 1, math.nan, math.inf, 253402304399.0):
        e = refused(ev(time=t))
        assert (e.field, e.reason) == ("time", "time_out_of_range")
    door.check(ev(time=NOW + 10 * 86400), check_time=False)  # replayed recordings


def test_time_policy_is_configurable():
    door.configure(door.TimePolicy(max_future=60, max_past=3600))
    try:
        assert refused(ev(time=NOW + 61)).reason == "time_out_of_range"
        assert refused(ev(time=NOW - 3601)).reason == "time_out_of_range"
        door.check(ev(time=NOW + 59))
    finally:
        door.configure(door.TimePolicy())


def test_year_10000_is_refused_and_still_renders():
    e = event_from_dict({"host": "h", "type": "t", "time": "9999-12-31T23:59:59-01:00"}, "s", NOW)
    assert refused(e).reason == "time_out_of_range"
    assert iso(253402304399.0) == "9999-12-31T23:59:59.999999Z"
    assert iso(-1e300) == "0001-01-01T00:00:00Z" and iso(math.nan) == "0001-01-01T00:00:00Z"
    year0 = event_from_dict({"host": "h", "type": "t", "time": "0001-01-01T00:00:00+01:00"}, "s", NOW)
    assert refused(year0).reason == "time_out_of_range"
    assert iso(year0.time) == "0001-01-01T00:00:00Z"
    with pytest.raises(FieldError):
        event_from_dict({"host": "h", "type": "t", "time": "not a time"}, "s", NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(attrs=st.dictionaries(st.text(max_size=10), json_values, max_size=6), text=st.text())
def test_whatever_passes_the_door_can_be_serialised_and_read_back(attrs, text):
    """The property the journal and stores rely on: a checked event round-trips through orjson
    and holds no NUL or lone surrogate."""
    e = ev(message=text[:100], attributes=attrs)
    try:
        door.check(e)
    except door.Refused as r:
        assert r.reason in {"bad_text", "too_deep", "too_large", "invalid"}
        return
    blob = orjson.dumps([e])
    assert orjson.loads(blob)[0]["attributes"] == orjson.loads(orjson.dumps(attrs))
    assert "\x00" not in blob.decode()


def test_refusal_messages_echo_untrusted_input_bounded():
    with pytest.raises(FieldError) as info:
        event_from_dict({"host": "h", "type": "t", "severity": "x" * 100_000}, "s", NOW)
    assert len(str(info.value)) < 700
    with pytest.raises(FieldError) as info:
        event_from_dict({"host": "h", "type": "t", "k" * 100_000: 1}, "s", NOW)
    assert len(info.value.field) < 200 and len(str(info.value)) < 1000


# An event as replay decodes it: attributes of any kind, text fields of any text.
decoded_fields = given(
    attrs=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    host=st.text(min_size=1, max_size=12),
    message=st.text(max_size=20),
)


@settings(max_examples=150, deadline=None)
@decoded_fields
def test_typed_check_of_a_decoded_event_refuses_what_the_full_check_refuses(attrs, host, message):
    """Replay decodes with event_from_dict and skips the door's repeated type tests (`typed`): the
    verdict and its reason must be the full check's, for text and attributes of any kind."""
    doc = {"host": host, "type": "t", "message": message, "attributes": attrs, "time": NOW}
    e = event_from_dict(doc, "replay", NOW, recorded=True)
    verdicts = []
    for typed in (False, True):
        try:
            door.check(e, check_time=False, typed=typed)
            verdicts.append(None)
        except door.Refused as r:
            verdicts.append((r.field, r.reason))
    assert verdicts[0] == verdicts[1]


@settings(max_examples=200, deadline=None)
@decoded_fields
def test_an_event_read_from_a_plain_json_text_passes_the_full_check(attrs, host, message):
    """Replay skips the text and document checks of an event read from a plain text (`plain`):
    the full check must find nothing to refuse in it."""
    try:
        text = orjson.dumps({"host": host, "type": "t", "message": message, "attributes": attrs, "time": NOW})
    except TypeError:
        return  # no JSON text holds it (a lone surrogate, an integer beyond 64 bits)
    e = event_from_dict(orjson.loads(text), "replay", NOW, recorded=True)
    if door.plain_json(text):
        door.check(e, check_time=False, typed=True)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        (b'{"a":"x\\u0000"}', "bad_text"),
        (b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        # 5 bytes written, 19 serialised: the line is below the size limit, the event above it
        (b'{"a":[' + b",".join([b"9E15"] * 7000) + b"]}", "too_large"),
    ],
)
def test_what_the_text_of_a_line_hides_is_still_refused(attributes, reason):
    text = b'{"host":"h","type":"t","time":1800000000.0,"attributes":' + attributes + b"}"
    assert len(text) <= door.MAX_EVENT_BYTES
    e = event_from_dict(orjson.loads(text), "replay", NOW, recorded=True)
    with pytest.raises(door.Refused) as info:
        door.check(e, check_time=False, typed=True, plain=door.plain_json(text))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": None}, "host"),
        ({"time": "2026-01-01"}, "time"),
        ({"last_seen": None}, "last_seen"),
        ({"received": True}, "received"),
        ({"severity": "bogus"}, "severity"),
        ({"severity": ["minor"]}, "severity"),
        ({"count": 0}, "count"),
        ({"source": 3}, "source"),
        ({"attributes": []}, "attributes"),
        ({"message": 1}, "message"),
    ],
)
def test_a_wire_event_with_a_wrong_field_is_refused_naming_it(change: dict[str, object], field: str) -> None:
    wire = {**ev().to_dict(), **change}
    with pytest.raises(door.Refused) as refused:
        door.from_wire(wire)
    assert refused.value.field == field and refused.value.reason == door.INVALID


def test_a_wire_event_missing_a_field_or_not_an_object_is_refused() -> None:
    wire = ev().to_dict()
    del wire["fingerprint"]
    with pytest.raises(door.Refused, match="fingerprint"):
        door.from_wire(wire)
    with pytest.raises(door.Refused, match="JSON object"):
        door.from_wire([ev().to_dict()])
    assert door.from_wire(ev().to_dict()) == ev()


_SOME_TEXT = st.text(st.sampled_from(["a", "é", "\x00", "\ud800", "\udfff", "Z", "\U0001f600"]), max_size=4)


@given(
    st.fixed_dictionaries(
        {
            "host": _SOME_TEXT,
            "type": _SOME_TEXT,
            "resource": _SOME_TEXT,
            "message": _SOME_TEXT,
            "id": _SOME_TEXT,
        }
    ),
    st.booleans(),
)
def test_text_fields_are_refused_exactly_when_one_holds_nul_or_a_lone_surrogate(texts, typed):
    # The check searches the texts joined; the field named must still be the first bad one, in order.
    texts = {k: v or "x" for k, v in texts.items()}
    bad = next(
        (
            k
            for k in ("host", "type", "resource", "id", "message")
            if "\x00" in texts[k] or any(0xD800 <= ord(c) <= 0xDFFF for c in texts[k])
        ),
        None,
    )
    event = ev(**texts)
    if bad is None:
        door.check(event, typed=typed)
    else:
        with pytest.raises(door.Refused) as info:
            door.check(event, typed=typed)
        assert (info.value.field, info.value.reason) == (bad, door.BAD_TEXT)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 40), st.integers(0, 40))
def test_plain_json_counts_brackets_as_the_plain_count_does(body, opens, arrays):
    # plain_json counts `[` only when the text holds one: the same verdict as counting both always.
    text = b"{" * opens + b"[" * arrays + body
    expected = (
        len(text) * 5 <= door.MAX_EVENT_BYTES
        and text.find(b"\\u0000") < 0
        and text.count(b"{") + text.count(b"[") <= door.MAX_DEPTH
    )
    assert door.plain_json(text) == expected
