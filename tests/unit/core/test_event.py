"""Normalisation of the generic format into Event, and the fingerprint."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from correlator.errors import FieldError
from correlator.event import (
    SEVERITY_RANK,
    Event,
    Severity,
    dumps_events,
    event_from_dict,
    fingerprint,
    iso,
    loads_events,
    parse_time,
)

RECEIVED = 1_800_000_000.0


def test_minimal_event_gets_defaults():
    ev = event_from_dict({"host": "r1", "type": "T"}, "webhook:generic", RECEIVED)
    assert ev.severity is Severity.INFO
    assert ev.time == RECEIVED and ev.received == RECEIVED and ev.last_seen == RECEIVED
    assert ev.source == "webhook:generic"
    assert len(ev.id) == 32
    assert ev.fingerprint == fingerprint("r1", "", "T")
    assert ev.count == 1 and ev.attributes == {}


def test_full_event():
    ev = event_from_dict(
        {
            "id": "x1",
            "time": "2026-11-30T12:00:00+01:00",
            "host": "r1",
            "type": "IF-MIB::linkDown",
            "severity": "MAJOR",
            "resource": "Gi0/1",
            "message": "down",
            "attributes": {"ifIndex": 3},
            "fingerprint": "custom",
        },
        "s",
        RECEIVED,
    )
    assert ev.time == parse_time("2026-11-30T11:00:00Z")
    assert ev.severity is Severity.MAJOR
    assert ev.fingerprint == "custom"
    assert ev.attributes == {"ifIndex": 3}


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"type": "T"}, "host", "required"),
        ({"host": "", "type": "T"}, "host", "required"),
        ({"host": 5, "type": "T"}, "host", "string"),
        ({"host": "h"}, "type", "required"),
        ({"host": "h", "type": "T", "severity": "fatal"}, "severity", "critical, major"),
        ({"host": "h", "type": "T", "time": "yesterday"}, "time", "ISO 8601"),
        ({"host": "h", "type": "T", "time": 1_800_000_000_000}, "time", "out of range"),
        ({"host": "h", "type": "T", "time": True}, "time", "ISO 8601"),
        ({"host": "h", "type": "T", "attributes": [1]}, "attributes", "object"),
        ({"host": "h", "type": "T", "id": ""}, "id", "non-empty"),
        ({"host": "h", "type": "T", "hots": "x"}, "hots", "did you mean 'host'"),
        ({"host": "h" * 300, "type": "T"}, "host", "longer"),
        ([1, 2], "", "JSON object"),
    ],
)
def test_invalid_fields_are_named(doc, field, words):
    with pytest.raises(FieldError) as e:
        event_from_dict(doc, "s", RECEIVED)
    assert e.value.field == field
    assert words in e.value.message


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        ({"host": "h" * 257, "type": "T"}, "host", "too_large"),
        ({"host": "h", "type": "T" * 257}, "type", "too_large"),
        ({"host": "h", "type": "T", "resource": "r" * 257}, "resource", "too_large"),
        ({"host": "h", "type": "T", "fingerprint": "f" * 257}, "fingerprint", "too_large"),
        ({"host": "h", "type": "T", "id": "i" * 129}, "id", "too_large"),
        ({"host": "h", "type": "T", "message": "m" * 16385}, "message", "too_large"),
        ({"host": "", "type": "T"}, "host", "invalid"),
        ({"host": "h", "type": "T", "fingerprint": 5}, "fingerprint", "invalid"),
        ({"host": "h", "type": "T", "id": ""}, "id", "invalid"),
        ({"host": "h", "type": "T", "id": 7}, "id", "invalid"),
        ({"host": "h", "type": "T", "message": 7}, "message", "invalid"),
    ],
)
def test_a_text_over_its_limit_is_refused_as_too_large(doc, field, reason):
    # the reasons of docs/events.md, the same the door gives for an event built another way
    with pytest.raises(FieldError) as e:
        event_from_dict(doc, "s", RECEIVED)
    assert (e.value.field, e.value.reason) == (field, reason)


def test_naive_time_is_utc():
    assert parse_time("2026-11-30T12:00:00") == parse_time("2026-11-30T12:00:00Z")


def test_fingerprint_is_stable_and_ignores_severity():
    a = event_from_dict({"host": "r1", "type": "T", "resource": "if1", "severity": "major"}, "s", 1.0)
    b = event_from_dict({"host": "r1", "type": "T", "resource": "if1", "severity": "clear"}, "x", 2.0)
    c = event_from_dict({"host": "r1", "type": "T", "resource": "if2"}, "s", 1.0)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    # documented value: a change would break de-duplication across an upgrade
    assert fingerprint("r1", "if1", "T") == "13367bb1fcaefcc512f8"
    assert len(a.fingerprint) == 20


def test_fields_are_separated_in_the_fingerprint():
    assert fingerprint("ab", "", "c") != fingerprint("a", "b", "c")


_TEXT = st.text(max_size=8)


def _hashed(host: str, resource: str, type_: str) -> str:
    text = f"{host}\x1f{resource}\x1f{type_}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=10).hexdigest()


@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT), max_size=30))
def test_remembered_fingerprints_equal_the_hash(keys):
    from correlator import event

    for host, resource, type_ in keys + keys:  # each key twice: computed, then remembered
        assert fingerprint(host, resource, type_) == _hashed(host, resource, type_)
    assert len(event._fingerprints) <= event._FINGERPRINTS_KEPT


def test_remembered_fingerprints_are_bounded(monkeypatch):
    from correlator import event

    monkeypatch.setattr(event, "_FINGERPRINTS_KEPT", 4)
    monkeypatch.setattr(event, "_fingerprints", {})
    monkeypatch.setattr(event, "_older_fingerprints", {})
    for i in range(10):
        assert fingerprint(f"h{i}", "", "T") == _hashed(f"h{i}", "", "T")
        assert len(event._fingerprints) <= 4 and len(event._older_fingerprints) <= 4


def test_a_remembered_fingerprint_in_use_outlives_a_new_generation(monkeypatch):
    from correlator import event

    class Counted:
        def __init__(self) -> None:
            self.hashed = 0

        def copy(self):  # type: ignore[no-untyped-def]
            self.hashed += 1
            return hashlib.blake2b(digest_size=10)

    counted = Counted()
    monkeypatch.setattr(event, "_FINGERPRINT", counted)
    monkeypatch.setattr(event, "_FINGERPRINTS_KEPT", 4)
    monkeypatch.setattr(event, "_fingerprints", {})
    monkeypatch.setattr(event, "_older_fingerprints", {})
    hosts = ["a", "b", "c", "d", "e", "a", "f", "g", "h", "a"]
    for host in hosts:
        assert fingerprint(host, "", "T") == _hashed(host, "", "T")
        assert len(event._fingerprints) <= 4 and len(event._older_fingerprints) <= 4
    # `a` is hashed once: found in the older generation after `e` started a new one, and kept again
    assert counted.hashed == len(set(hosts))


def test_fingerprint_of_text_that_is_not_text_does_not_raise():
    # a hand-built event with a list for a host: the door refuses it later, with the field named
    assert fingerprint(["r1"], "", "T") == fingerprint("['r1']", "", "T")  # type: ignore[arg-type]


def test_event_defaults_and_derived_fields():
    a = Event("i", 5.0, 6.0, "s", "h", "T")
    b = Event("i", 5.0, 6.0, "s", "h", "T")
    assert a.attributes == {} and a.attributes is not b.attributes  # a new dict for each event
    assert a.fingerprint == fingerprint("h", "", "T") and a.last_seen == 5.0 and a.count == 1
    assert a.severity is Severity.INFO and a.resource == a.message == ""
    c = Event("i", 5.0, 6.0, "s", "h", "T", attributes=None, fingerprint="f", last_seen=7.0)  # type: ignore[arg-type]
    assert c.attributes is None and c.fingerprint == "f" and c.last_seen == 7.0  # kept for the door to refuse


def test_written_out_init_takes_every_field_in_order():
    # Event.__init__ is written by hand (see there): a field added to the class but not to it would
    # never be set, and one added in another place would take its neighbour's value.
    params = list(inspect.signature(Event.__init__).parameters)[1:]
    assert params == [f.name for f in dataclasses.fields(Event)]
    defaults = {
        p.name: p.default
        for p in inspect.signature(Event.__init__).parameters.values()
        if p.default is not p.empty
    }
    fields = {f.name: f.default for f in dataclasses.fields(Event) if f.default is not dataclasses.MISSING}
    assert {k: v for k, v in defaults.items() if k != "attributes"} == fields  # attributes: a new {} each


def test_severity_order():
    ranks = [s.rank for s in Severity]
    assert [s.value for s in Severity] == ["critical", "major", "minor", "warning", "info", "clear"]
    assert ranks == sorted(ranks, reverse=True)


def test_a_severity_as_text_has_its_rank():
    # Incidents keep their severity as text and rank it through the same table.
    assert {s.value: SEVERITY_RANK[s.value] for s in Severity} == {s.value: s.rank for s in Severity}


def test_wire_round_trip():
    ev = event_from_dict({"host": "r1", "type": "T", "attributes": {"a": [1, {"b": None}]}}, "s", RECEIVED)
    ev.count = 3
    assert loads_events(dumps_events([ev])) == [ev]


@pytest.mark.parametrize("severity", list(Severity))
def test_wire_form_holds_the_severity_as_plain_text(severity):
    # plain str, not the enum member: the stores and other readers of the wire form get text
    sev = Event("i", 5.0, 6.0, "s", "h", "T", severity).to_dict()["severity"]
    assert type(sev) is str and sev == severity.value


def test_api_form_uses_iso_times():
    ev = Event("i", RECEIVED, RECEIVED, "s", "h", "T")
    doc = ev.to_api()
    assert doc["time"] == iso(RECEIVED) == "2027-01-15T08:00:00Z"
    assert orjson.loads(orjson.dumps(doc))["severity"] == "info"


def test_recorded_form_is_accepted_for_replay():
    stored = Event("i", RECEIVED, RECEIVED + 1, "snmp", "h", "T", Severity.MAJOR, count=4).to_api()
    ev = event_from_dict(stored, "replay", 0.0, recorded=True)
    assert ev.source == "snmp" and ev.count == 4 and ev.received == RECEIVED + 1
    with pytest.raises(FieldError):
        event_from_dict(stored, "webhook", 0.0)  # the ingest format does not take stored fields


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=5,
        ),
        max_size=6,
    )
)
def test_arbitrary_objects_never_raise_anything_but_field_error(doc):
    with contextlib.suppress(FieldError):
        event_from_dict(doc, "s", RECEIVED)


def test_a_key_longer_than_the_door_allows_is_hashed_but_not_kept():
    from correlator import event

    host = "h" * 100_000
    assert fingerprint(host, "", "t") == fingerprint(host, "", "t")
    assert (host, "", "t") not in event._fingerprints
    assert (host, "", "t") not in event._older_fingerprints


def test_a_generated_id_is_microseconds_counter_and_tag_in_32_hex_digits():
    """The layout docs/events.md gives: 16 hex digits of microseconds, 8 of a per-process counter,
    8 of a per-process tag; time-ordered, so the store's index on id grows at its right edge."""
    from correlator.event import _ID_TAG, new_id

    before = time.time_ns() // 1000
    a, b = new_id(), new_id()
    after = time.time_ns() // 1000
    for i in (a, b):
        assert len(i) == 32 and int(i, 16) >= 0 and i.endswith(_ID_TAG)
        assert before <= int(i[:16], 16) <= after
    assert int(b[16:24], 16) == (int(a[16:24], 16) + 1) & 0xFFFFFFFF and a < b


def test_plain_event_sets_every_slot_as_init_does():
    # plain_event builds its Event without __init__ (see there): a field added to the class but not
    # to it would be left unset (reading it raises), or set unlike __init__ sets it.
    from correlator.event import plain_event

    doc = {"id": "i", "time": 5.0, "host": "h", "type": "T", "resource": "r", "attributes": {"a": 1}}
    fast = plain_event(dict(doc), "s", 6.0)
    assert fast is not None
    slow = Event("i", 5.0, 6.0, "s", "h", "T", resource="r", attributes={"a": 1})
    assert {f: getattr(fast, f) for f in Event.__slots__} == {f: getattr(slow, f) for f in Event.__slots__}
    assert set(Event.__slots__) == {f.name for f in dataclasses.fields(Event)}
