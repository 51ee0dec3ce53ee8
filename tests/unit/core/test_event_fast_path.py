"""The one-pass decoders (`plain_event`, a recording's plain line) against the long way: the same
event, or the same refusal naming the same field for the same reason, on generated and mutated input."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator import door
from correlator.errors import FieldError
from correlator.event import event_from_dict, full_event_from_dict, plain_event
from correlator.recording import read_events, recorded_event
from correlator.replay import ReplaySummary

RECEIVED = 1_800_000_000.0
LONG = "x" * 300
HUGE = "m" * 16385

_text = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "h", "é", "a\x00b", "a\ud800", LONG, "Gi0/1"]),
)
_value = st.one_of(
    _text, st.none(), st.integers(-3, 3), st.booleans(), st.floats(), st.lists(st.none(), max_size=1)
)
_attrs = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), _text, st.none()), max_size=3),
    st.just({"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
    st.just({"nul": "a\x00"}),
    st.just([]),
    st.just("x"),
)
_time = st.one_of(
    st.floats(),
    st.floats(0.0, 32503680000.0),
    st.integers(-1, 40_000_000_000),
    st.sampled_from(["2026-11-30T12:00:00Z", "9999-12-31T23:59:59-01:00", "not a time", "", True]),
    st.none(),
)
_severity = st.one_of(
    st.sampled_from(["major", "clear", "MAJOR", "Info", "bogus", ""]), st.none(), st.integers(0, 1)
)
_FIELDS: dict[str, Any] = {
    "host": st.one_of(_text, _value),
    "type": st.one_of(_text, _value),
    "resource": st.one_of(_text, _value),
    "severity": _severity,
    "time": _time,
    "id": st.one_of(_text, st.just("i" * 129), _value),
    "message": st.one_of(_text, st.just(HUGE), _value),
    "attributes": _attrs,
    "fingerprint": st.one_of(_text, _value),
    # recorded fields and strangers: the long way, accepted or refused there
    "count": st.integers(0, 2),
    "received": _time,
    "source": _text,
    "severty": _text,
}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed events (host and type usually present), every field sometimes wrong."""
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        doc["host"] = draw(st.sampled_from(["core-sw1", "h01"]))
        doc["type"] = draw(st.sampled_from(["cpu.high.1", "IF-MIB::linkDown"]))
    for key in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=5, unique=True)):
        if key in ("count", "received", "source", "severty") and draw(st.integers(0, 3)):
            continue  # rarer
        doc[key] = draw(_FIELDS[key])
    return doc


def verdict(fn: Any, *args: Any) -> Any:
    """The event (wire form) or the refusal (field, reason, message)."""
    try:
        return fn(*args).to_dict()
    except FieldError as e:
        return ("refused", e.field, e.reason, e.message)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_plain_event_builds_the_full_decoders_event_or_leaves_it_to_it(doc):
    with mock.patch("correlator.event.new_id", lambda: "generated"):  # the same id from both
        fast = plain_event(dict(doc), "webhook:generic", RECEIVED)
        full = verdict(full_event_from_dict, dict(doc), "webhook:generic", RECEIVED)
        if fast is not None:
            assert fast.to_dict() == full
        assert verdict(event_from_dict, dict(doc), "webhook:generic", RECEIVED) == full


def the_long_way(doc: Any, n: int, text: bytes) -> Any:
    """A recording's line through the full decoder and the whole door (no fast path, no `typed`)."""
    if isinstance(doc, dict) and doc.get("id") is None:  # missing or null: derived, never random
        doc["id"] = hashlib.blake2b(b"%d:" % n + text, digest_size=16).hexdigest()
    ev = full_event_from_dict(doc, "replay", 0.0, recorded=True)
    if "received" not in doc:
        ev.received = ev.time
    door.check(ev, check_time=False)
    return ev


_MUTATIONS = [
    b"",  # none
    b'"\\u0000"',  # NUL as written in JSON
    b"[" * 40 + b"]" * 40,  # deep
    b'"back\\\\u0000slash"',  # a literal backslash-u0000: a false alarm of the text scan
    b"[" + b",".join([b"9E15"] * 7000) + b"]",  # short text, large event
    b'"\\ud800"',  # a lone surrogate: orjson refuses the line
]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.sampled_from(_MUTATIONS), st.sampled_from(["message", "attributes", "host", "x"]))
def test_a_recorded_line_gives_what_the_long_way_gives(doc, mutation, where):
    try:
        text = orjson.dumps(doc)
    except TypeError:
        return  # no JSON text holds it
    if mutation:
        value = b'{"k":' + mutation + b"}" if where == "attributes" else mutation
        text = text[:-1] + (b"," if len(text) > 2 else b"") + b'"%s":%s}' % (where.encode(), value)
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return
    fast = verdict(recorded_event, orjson.loads(text), 7, text, "replay", 0.0)
    assert fast == verdict(the_long_way, orjson.loads(text), 7, text)


@pytest.mark.parametrize(
    "line",
    [
        b'{"time":1800000000.0,"host":"h02","type":"auth.fail.97","attributes":{"user":"u2"}}',
        b'{"time":1800000000.001,"host":"h01","type":"cpu.high.999"}',
        b'{"host":"h","type":"t","severity":"major","resource":"r","message":"m","fingerprint":"f","id":"i"}',
    ],
)
def test_the_common_lines_take_the_fast_path(line):
    assert plain_event(orjson.loads(line), "replay", 0.0) is not None


def _line(doc: dict[str, Any], mutation: bytes, where: str) -> bytes:
    try:
        text = orjson.dumps(doc)
    except TypeError:
        return b"not json"  # no JSON text holds it: an invalid line instead
    if mutation:
        value = b'{"k":' + mutation + b"}" if where == "attributes" else mutation
        text = text[:-1] + (b"," if len(text) > 2 else b"") + b'"%s":%s}' % (where.encode(), value)
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(
                documents(), st.sampled_from(_MUTATIONS), st.sampled_from(["message", "attributes", "x"])
            ),
            st.sampled_from([b"", b"  ", b"[1]", b"{", b"null"]),
        ),
        max_size=12,
    )
)
def test_reading_a_recording_gives_each_line_as_recorded_event_does(items):
    lines = [item if isinstance(item, bytes) else _line(*item) for item in items]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.ndjson"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        expected: list[Any] = []
        errors: list[str] = []
        with mock.patch("correlator.event.new_id", lambda: "generated"):
            for n, line in enumerate(lines, start=1):
                text = line + b"\n"  # as read from the file
                try:
                    expected.append(recorded_event(orjson.loads(text), n, text, "replay", 0.0).to_dict())
                except (orjson.JSONDecodeError, FieldError) as e:
                    if line.strip():
                        errors.append(f"{path}:{n}: {e}")
            summary = ReplaySummary()
            got = [e.to_dict() for batch in read_events(path, summary, None) for e in batch]
    assert got == expected
    assert summary.errors == errors[:10] and summary.invalid == len(errors)
    assert summary.events_in == len(expected) and summary.lines == len(lines)
