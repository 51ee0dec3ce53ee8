"""Validation at the door: the one policy every collector applies to an Event before `ctx.emit`.

An event that passes is safe for everything behind the door: the journal and store serialise it
(orjson, SQLite, PostgreSQL), the API renders its times, correlation steps its clock to its time.
One that fails raises `Refused` (a FieldError with a bounded `reason` for the rejection metric).
docs/events.md lists the limits and the time policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, cast

import orjson

from correlator import metrics
from correlator.errors import FieldError
from correlator.event import (
    MAX_ID_LEN,
    MAX_MESSAGE_LEN,
    MAX_NAME_LEN,
    TOO_LARGE,
    Event,
    Severity,
    iso,
    texts_fit,
)

MAX_DEPTH = 32
"""Deepest nesting of objects/arrays inside `attributes` (the attributes object is level 1)."""

MAX_EVENT_BYTES = 128 * 1024
"""Largest event: its attributes as JSON in bytes plus its message in characters."""

MAX_FUTURE = 86400.0
MAX_PAST = 3650 * 86400.0
# Times every output can render (ISO 8601, years 1 to 9999): what is checked instead of the time
# policy where the policy does not apply (a recording, an event read back from the journal).
EARLIEST = -62135596800.0  # 0001-01-01T00:00:00Z
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z

# The `reason` label values of correlator_events_rejected_total that the door adds (bounded set),
# with TOO_LARGE from event.py, whose own checks of the text limits give it too.
TOO_DEEP = "too_deep"
BAD_TEXT = "bad_text"
BAD_TIME = "time_out_of_range"
INVALID = "invalid"  # every other field error (missing host, unknown field, wrong type, ...)


_WIRE_FIELDS = tuple(Event.__dataclass_fields__)
_NUMBER = (float, int)  # JSON numbers; bool (an int subclass) is not one


class Refused(FieldError):
    """An event refused at the door; `reason` is one of the constants above."""

    def __init__(self, field: str, message: str, reason: str) -> None:
        super().__init__(field, message, reason)


@dataclass(frozen=True)
class TimePolicy:
    """How far event time may be from the receive time (seconds), configured as `ingest.*`."""

    max_future: float = MAX_FUTURE
    max_past: float = MAX_PAST


_policy = TimePolicy()


def configure(policy: TimePolicy) -> None:
    """Set the time policy of this process (the daemon does, once, from `ingest.*`)."""
    global _policy
    _policy = policy


def check(ev: Event, check_time: bool = True, typed: bool = False, plain: bool = False) -> None:
    """Raise Refused unless `ev` keeps every limit; cheap on the common path.

    The common path is length and `in` tests on the six text fields and one orjson serialisation
    of the attributes (C speed) with a few byte searches: orjson itself refuses lone surrogates,
    integers beyond 64 bits and nesting beyond its own limit, escapes U+0000 as `\\u0000`, and a
    document with few brackets cannot be deep. Only a suspicious event is walked in Python.
    `check_time` is off for recordings replayed on purpose (their times are old by design) and for
    events read back from the journal (they passed the policy then; a changed policy must not
    refuse what was acknowledged): then times need only be ones every output can render.
    `typed`: the event comes straight from `event_from_dict`, which checked the text fields' types
    and lengths and that attributes is an object: those tests are not made twice.
    `plain`: `plain_json` was true of the text the event was parsed from (its line, or the whole
    body it came in), so its texts and attributes keep their limits: only the times are checked.
    """
    if not (
        typed
        or (
            texts_fit(ev.host, ev.type, ev.resource, ev.fingerprint, ev.id, ev.message)
            and type(ev.attributes) is dict
        )
    ):
        _check_names(ev)
    if check_time:
        p, rcv = _policy, ev.received
        # `not (a <= t <= b)` is also true for NaN.
        if not rcv - p.max_past <= ev.time <= rcv + p.max_future:
            _refuse_time(ev)
    elif not (
        EARLIEST <= ev.time <= LATEST
        and EARLIEST <= ev.received <= LATEST
        and EARLIEST <= ev.last_seen <= LATEST
    ):
        _refuse_unrepresentable(ev)
    if plain:
        return
    m = ev.message
    # One string made and searched twice: cheaper than twelve searches (the texts are short, and
    # the message at most MAX_MESSAGE_LEN).
    if "\x00" in (text := f"{ev.host}{ev.type}{ev.resource}{ev.fingerprint}{ev.id}{m}") or not text.isascii():
        _check_names(ev)  # NUL, or non-ASCII text to check for lone surrogates
    # Empty attributes (most events) serialise to `{}`: nothing to search, and the message alone
    # is far below the size limit (MAX_MESSAGE_LEN was checked above).
    if ev.attributes:
        blob = check_document("attributes", ev.attributes)
        if len(blob) + len(m) > MAX_EVENT_BYTES:
            raise Refused("attributes", f"event larger than {MAX_EVENT_BYTES} bytes", TOO_LARGE)


def plain_json(text: bytes) -> bool:
    """Whether every value orjson parses from `text` keeps the text and document limits, judged on
    the text alone (a few byte scans instead of the event's text fields and its attributes
    serialised again). orjson refuses lone surrogates, unescaped control characters and numbers
    out of range, so its strings are valid text and its values serialisable; what is left: U+0000,
    only written as the escape; the depth, at most the brackets; the size, where a number may come
    out up to 5x longer than written (9E15 is 9000000000000000.0). False: check the event itself.

    `91 in` (a `[`) before counting them: most events hold no array, and `count` parses its
    arguments the slow way (measured: skipping the second count saves 3% of reading a line). The
    U+0000 test is `plain_strings`, written out here: a call a line costs more than it."""
    return (
        len(text) * 5 <= MAX_EVENT_BYTES
        and (92 not in text or text.find(b"\\u0000") < 0)
        and text.count(b"{") + (text.count(b"[") if 91 in text else 0) <= MAX_DEPTH
    )


def plain_strings(text: bytes) -> bool:
    """Whether every string orjson parses from `text` keeps the text limits: no U+0000 (only ever
    written as the escape; orjson itself refuses lone surrogates and raw control characters).
    Depth and size are the caller's to judge (`plain_json` judges them on the text too).

    `92 not in` (a backslash) and `find`, not `b"\\u0000" not in`: `x in data` with bytes `x`
    first tries `x` as a byte value, and makes and drops a TypeError (measured: 2x the search)."""
    return 92 not in text or text.find(b"\\u0000") < 0


def from_wire(d: object) -> Event:
    """An event in the wire form (`Event.to_dict`) read back from the journal or a dead letter.

    Not trusted like the daemon's own memory: a journal written by another version or damaged on
    disk, or a dead letter's raw text, may hold `host: null`, a time as text or a severity no one
    knows, which would break a stage or /metrics far from here. So the wire fields' types are
    checked, then the door without the time policy. Raises Refused.

    The common path builds the event first and tests the wire fields' types in one expression
    (a missing field or an unknown severity fails the build); only a failure is examined field by
    field to name what is wrong."""
    m = cast(dict[str, Any], d)  # checked below: a failed build or the test after it
    try:
        ev = Event.from_wire(m)
    except Exception:  # not a mapping, a field missing, a severity no one knows, text not text
        _refuse_wire(d)
    if not (
        type(d) is dict
        and type(ev.time) in _NUMBER
        and type(ev.received) in _NUMBER
        and type(m["last_seen"]) in _NUMBER  # the event's may be `time` put in for a false one
        and type(ev.source) is str
        and type(ev.count) is int
        and ev.count >= 1
    ):
        _refuse_wire(d)
    check(ev, check_time=False)
    return ev


def _refuse_wire(d: object) -> NoReturn:
    """Name the first wire field of `d` that is missing or of the wrong type."""
    if type(d) is not dict:
        raise Refused("", f"an event must be a JSON object, got {type(d).__name__}", INVALID)
    missing = next((k for k in _WIRE_FIELDS if k not in d), None)
    if missing is not None:
        raise Refused(missing, "is missing", INVALID)
    for k in ("time", "received", "last_seen"):
        if type(d[k]) not in _NUMBER:
            raise Refused(k, f"must be epoch seconds, got {type(d[k]).__name__}", INVALID)
    if type(d["source"]) is not str or type(d["count"]) is not int or d["count"] < 1:
        bad = "source" if type(d["source"]) is not str else "count"
        raise Refused(bad, "has the wrong type", INVALID)
    sev = d["severity"]
    if type(sev) is not str or sev not in {s.value for s in Severity}:  # the refusal path only
        raise Refused("severity", "is not a known severity", INVALID)
    for k in ("id", "host", "type", "resource", "message", "fingerprint"):
        if type(d[k]) is not str:
            raise Refused(k, f"must be a string, got {type(d[k]).__name__}", INVALID)
    raise Refused("", "is not an event in the wire form", INVALID)


def check_document(field: str, doc: object) -> bytes:
    """Any JSON value from outside (attributes, an API record's object field): raise Refused when
    it nests deeper than MAX_DEPTH or holds U+0000 or a lone surrogate; returns it serialised."""
    try:
        blob = orjson.dumps(doc)
    except TypeError as e:  # orjson.JSONEncodeError is a TypeError
        _walk(doc, field)  # names the place when it can
        raise Refused(field, f"cannot be stored: {e}", _encode_reason(str(e))) from None
    # `92 in blob` (a backslash) is a memchr, far cheaper than searching for the 6-byte escape.
    if (92 in blob and blob.find(b"\\u0000") >= 0) or blob.count(b"[") + blob.count(b"{") > MAX_DEPTH:
        _walk(doc, field)  # a literal backslash-u0000 or brackets inside strings are false alarms
    return blob


def refusal(ev: Event, source: str) -> Refused | None:
    """For collectors that drop rather than answer: check, and count a refusal under `source`."""
    try:
        check(ev)
    except Refused as e:
        metrics.REJECTED_BY(source, e.reason).inc()
        return e
    return None


def check_text(field: str, s: str) -> None:
    """U+0000 breaks PostgreSQL text and C consumers; a lone surrogate cannot be encoded as UTF-8."""
    if "\x00" in s:
        raise Refused(field, "contains U+0000 (NUL)", BAD_TEXT)
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError:
            raise Refused(field, "contains a lone surrogate (not valid Unicode text)", BAD_TEXT) from None


def _check_names(ev: Event) -> None:
    for field, value, low, high in (
        ("host", ev.host, 1, MAX_NAME_LEN),
        ("type", ev.type, 1, MAX_NAME_LEN),
        ("resource", ev.resource, 0, MAX_NAME_LEN),
        ("fingerprint", ev.fingerprint, 0, MAX_NAME_LEN),
        ("id", ev.id, 1, MAX_ID_LEN),
        ("message", ev.message, 0, MAX_MESSAGE_LEN),
    ):
        if type(value) is not str:
            raise Refused(field, f"must be a string, got {type(value).__name__}", INVALID)
        if not low <= len(value) <= high:
            if len(value) > high:
                raise Refused(field, f"longer than {high} characters", TOO_LARGE)
            raise Refused(field, "is required and must be a non-empty string", INVALID)
        check_text(field, value)
    if not isinstance(ev.attributes, dict):  # a subclass (a rule test's YAML mapping) is an object too
        raise Refused("attributes", "must be a JSON object", INVALID)


def _refuse_unrepresentable(ev: Event) -> None:
    field = next(
        (k for k, t in (("time", ev.time), ("received", ev.received)) if not EARLIEST <= t <= LATEST),
        "last_seen",
    )
    raise Refused(field, "outside the years 1 to 9999 (or not a number)", BAD_TIME)


def _refuse_time(ev: Event) -> None:
    p = _policy
    raise Refused(
        "time",
        f"{iso(ev.time)} is outside the accepted range: at most {p.max_past:g} s before and "
        f"{p.max_future:g} s after the receive time {iso(ev.received)}",
        BAD_TIME,
    )


def _walk(root: object, field: str) -> None:
    """The precise check of a document: depth, key and value text. Raises on the first problem."""
    if isinstance(root, str):
        check_text(field, root)
        return
    if not isinstance(root, dict | list):
        return
    stack: list[tuple[Any, int, str]] = [(root, 1, field)]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise Refused(where, f"nested deeper than {MAX_DEPTH} levels", TOO_DEEP)
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise Refused(where, f"has a key of type {type(k).__name__}", INVALID)
                check_text(where, k)  # before the key goes into a path, the answer and the log
                here = f"{where}.{k[:40]}" if depth <= 3 else where  # a few levels, bounded
                if isinstance(v, dict | list):
                    stack.append((v, depth + 1, here))
                elif isinstance(v, str):
                    check_text(here, v)
        else:
            for v in value:
                if isinstance(v, dict | list):
                    stack.append((v, depth + 1, where))
                elif isinstance(v, str):
                    check_text(where, v)


def _encode_reason(msg: str) -> str:
    if "Recursion" in msg:
        return TOO_DEEP
    if "surrogate" in msg or "UTF-8" in msg:
        return BAD_TEXT
    if "64-bit" in msg:
        return TOO_LARGE
    return INVALID
