"""The one normalised event type that every collector produces, and its validation.

Collectors build `Event`s (through `event_from_dict` or directly); the queue carries them as orjson,
the pipeline transforms them and the store keeps them. docs/events.md documents the schema.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from correlator.errors import FieldError


class Severity(enum.StrEnum):
    """One ordered scale for every source; `rank` orders it (clear lowest, critical highest)."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INFO = "info"
    CLEAR = "clear"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: object) -> Severity:
        if isinstance(value, str):
            sev = _BY_NAME.get(value.lower())
            if sev is not None:
                return sev
        raise FieldError("severity", f"must be one of {', '.join(_NAMES)}, got {value!r}")


# Keyed by the members, which hash and compare as their text: a plain 'major' (an incident's
# severity as stored) finds its rank here too.
SEVERITY_RANK: dict[str, int] = {
    Severity.CLEAR: 0,
    Severity.INFO: 1,
    Severity.WARNING: 2,
    Severity.MINOR: 3,
    Severity.MAJOR: 4,
    Severity.CRITICAL: 5,
}
_BY_NAME = {s.value: s for s in Severity}
_INFO = Severity.INFO  # a member read from the class goes through EnumType.__getattr__ (CPython 3.11)
_NAMES = [s.value for s in Severity]

MAX_ID_LEN = 128
MAX_NAME_LEN = 256
MAX_MESSAGE_LEN = 16384
TOO_LARGE = "too_large"  # the rejection reason of a text over these limits (door.py, docs/events.md)
_NEW_DICT: Any = object()  # Event's default attributes: a new {} for each event


@dataclass(slots=True, init=False)
class Event:
    """A normalised event. Times are UTC epoch seconds (floats) so the hot path never builds datetimes.

    `fingerprint` is the de-duplication key: by default a hash of (host, resource, type), so repeats
    of the same condition and its clear share it while the severity may change.
    `count` and `last_seen` are maintained by de-duplication (one stored event per repeat burst).
    """

    id: str
    time: float
    received: float
    source: str
    host: str
    type: str
    severity: Severity = Severity.INFO
    resource: str = ""
    message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    count: int = 1
    last_seen: float = 0.0

    # Written out rather than generated: the generated one calls a __post_init__ for the two
    # derived fields, one Python call more per event.
    def __init__(
        self,
        id: str,
        time: float,
        received: float,
        source: str,
        host: str,
        type: str,
        severity: Severity = Severity.INFO,
        resource: str = "",
        message: str = "",
        attributes: dict[str, Any] = _NEW_DICT,
        fingerprint: str = "",
        count: int = 1,
        last_seen: float = 0.0,
    ) -> None:
        self.id = id
        self.time = time
        self.received = received
        self.source = source
        self.host = host
        self.type = type
        self.severity = severity
        self.resource = resource
        self.message = message
        self.attributes = {} if attributes is _NEW_DICT else attributes
        self.fingerprint = fingerprint or _fingerprint(host, resource, type)
        self.count = count
        self.last_seen = last_seen or time

    def to_dict(self) -> dict[str, Any]:
        """The wire form used by the queue and the store (epoch-second floats).

        `_value_`, not `value`: the same text, read as a plain attribute instead of through enum's
        Python-level property (measured: a fifth of this method)."""
        return {
            "id": self.id,
            "time": self.time,
            "received": self.received,
            "source": self.source,
            "host": self.host,
            "type": self.type,
            "severity": self.severity._value_,
            "resource": self.resource,
            "message": self.message,
            "attributes": self.attributes,
            "fingerprint": self.fingerprint,
            "count": self.count,
            "last_seen": self.last_seen,
        }

    def to_api(self) -> dict[str, Any]:
        """The public JSON form: like the wire form but with ISO 8601 UTC times."""
        d = self.to_dict()
        d["time"] = iso(self.time)
        d["received"] = iso(self.received)
        d["last_seen"] = iso(self.last_seen)
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Event:
        """Rebuild an event that this daemon serialised itself (trusted, no validation)."""
        return cls(
            d["id"],
            d["time"],
            d["received"],
            d["source"],
            d["host"],
            d["type"],
            _BY_NAME[d["severity"]],
            d["resource"],
            d["message"],
            d["attributes"],
            d["fingerprint"],
            d["count"],
            d["last_seen"],
        )


def fingerprint(host: str, resource: str, type_: str) -> str:
    """Stable de-duplication key: 20 hex digits of BLAKE2b over host, resource and type.

    Remembered for the last few thousand distinct keys: events repeat a small set of (host,
    resource, type) by nature, and a dict lookup costs about a third of the hash. A miss costs
    about half a hash more (the key kept), so the set is sized for a busy NOC's working set.

    Two generations of _FINGERPRINTS_KEPT keys each: when the newer is full it becomes the older
    and the one before is dropped; a key found in the older is kept again in the newer. Keys in
    use survive each turn, while types seen once (noise) go with their generation; clearing a
    single set instead dropped the working set with them. With 1,000 rules over 20,000 types on
    10 hosts (33,000 keys in 100,000 events) 66% of lines are hits instead of 53%, the most any
    cache gets there; with 10,000 rules, 17% instead of 7%. At most twice the keys of one set."""
    key = (host, resource, type_)
    try:
        fp = _fingerprints.get(key)
    except TypeError:  # not text (an Event built by hand, refused later at the door): as text
        return fingerprint(f"{host}", f"{resource}", f"{type_}")
    return fp if fp is not None else _missed_fingerprint(key)


def _missed_fingerprint(key: tuple[str, str, str]) -> str:
    """`fingerprint` of a text key not in the newer generation: from the older one, or hashed; kept.
    `plain_event` looks in the newer generation itself and calls this only on a miss."""
    global _fingerprints, _older_fingerprints
    fp = _older_fingerprints.get(key)
    if fp is not None:  # in use again: into the newer generation, to outlive the older
        if len(_fingerprints) >= _FINGERPRINTS_KEPT:
            _older_fingerprints, _fingerprints = _fingerprints, {}
        _fingerprints[key] = fp
        return fp
    host, resource, type_ = key
    text = f"{host}\x1f{resource}\x1f{type_}"
    try:
        data = text.encode()
    except UnicodeEncodeError:
        # surrogatepass: never raise here for a lone surrogate (the door refuses such an event
        # with its field named); valid text encodes the same either way, so the key is unchanged.
        data = text.encode("utf-8", "surrogatepass")
    h = _FINGERPRINT.copy()  # a copy of a prepared hash: cheaper than making one with its options
    h.update(data)
    fp = h.hexdigest()
    if len(data) > _FINGERPRINT_KEY_BYTES:
        return fp  # longer than the door allows (a dead letter retried): not kept
    if len(_fingerprints) >= _FINGERPRINTS_KEPT:
        # a new generation: cheaper than tracking which key is oldest
        _older_fingerprints, _fingerprints = _fingerprints, {}
    _fingerprints[key] = fp
    return fp


_FINGERPRINT = hashlib.blake2b(digest_size=10)
_fingerprint = fingerprint  # for Event.__init__, whose parameter of that name hides the function
_FINGERPRINTS_KEPT = 16384
_FINGERPRINT_KEY_BYTES = 3 * 4 * MAX_NAME_LEN + 2  # three names the door accepts, in UTF-8
_fingerprints: dict[tuple[str, str, str], str] = {}  # the newer generation
_older_fingerprints: dict[tuple[str, str, str], str] = {}


def new_id() -> str:
    """32 hex digits: microseconds since the epoch, a per-process counter, a per-process random tag.

    Time-ordered so that the store's unique index on id grows at its right edge instead of taking
    random inserts (measured: 40% cheaper store writes than random ids). No syscall per id:
    os.urandom releases the GIL, and under load every release queued behind the store thread.
    """
    # The two numbers as one 12-byte integer, in hex: the same digits as formatting each with its
    # width (`:016x`, `:08x`), at half the cost (format specs are parsed per call).
    return ((time.time_ns() // 1000) << 32 | next(_id_counter) & 0xFFFFFFFF).to_bytes(12).hex() + _ID_TAG


_ID_TAG = os.urandom(4).hex()
_id_counter = itertools.count()


def iso(ts: float) -> str:
    """ISO 8601 UTC with a Z. Never raises: a time outside years 1-9999 (stored before the door
    refused such times) is shown as the nearest end of that range, so a page of events still renders."""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return _ISO_MAX if ts > 0 else _ISO_MIN


_ISO_MAX = "9999-12-31T23:59:59.999999Z"
_ISO_MIN = "0001-01-01T00:00:00Z"


def clock_time(ts: float) -> str:
    """The time of day in UTC, 10:00:30Z (10:00:30.5Z with a fraction): for texts about nearby times."""
    dt = datetime.fromtimestamp(ts, UTC)
    frac = f".{dt.microsecond:06d}".rstrip("0") if dt.microsecond else ""
    return f"{dt:%H:%M:%S}{frac}Z"


_YEAR_3000 = 32503680000.0


def parse_time(value: object, name: str = "time") -> float:
    """Accept epoch seconds (int/float) or an ISO 8601 string; a naive string is taken as UTC."""
    if isinstance(value, bool):
        raise FieldError(name, f"must be an ISO 8601 string or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        if not 0 <= value < _YEAR_3000:  # catches milliseconds sent as seconds
            raise FieldError(name, f"epoch seconds out of range: {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(
                name, f"must be an ISO 8601 time such as 2026-11-30T12:00:00Z, got {value[:40]!r}"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:  # an offset can move year 1 or 9999 out of range
            return dt.timestamp()
        except (OverflowError, ValueError):
            raise FieldError(name, f"out of range: {value[:40]!r}") from None
    raise FieldError(name, f"must be an ISO 8601 string or epoch seconds, got {type(value).__name__}")


EVENT_FIELDS = (
    "id",
    "time",
    "host",
    "type",
    "severity",
    "resource",
    "message",
    "attributes",
    "fingerprint",
)


RECORDED_FIELDS = ("source", "received", "count", "last_seen")


def event_from_dict(d: object, source: str, received: float, recorded: bool = False) -> Event:
    """Validate one untrusted JSON object (the generic format) into an Event.

    Raises FieldError naming the first offending field. Unknown fields are rejected rather than
    silently dropped, because a misspelt `severty` would otherwise lose the severity unnoticed.
    With `recorded`, the fields of a stored event (source, received, count, last_seen) are taken
    too, so events exported from the store can be replayed.

    The common shape takes `plain_event`; the rest, and every refusal, the full path below it.
    """
    ev = plain_event(d, source, received) if type(d) is dict else None
    return ev if ev is not None else full_event_from_dict(d, source, received, recorded)


def full_event_from_dict(d: object, source: str, received: float, recorded: bool = False) -> Event:
    """`event_from_dict` field by field: every shape, and the refusal naming the first bad field."""
    if not isinstance(d, dict):
        raise FieldError("", f"an event must be a JSON object, got {_json_type(d)}")
    known = _KNOWN_RECORDED if recorded else _KNOWN
    if not d.keys() <= known:
        key = next(k for k in d if k not in known)
        raise FieldError(key, f"unknown field{_suggest(key)}; known fields: {', '.join(sorted(known))}")
    # Each check is one type test on the common path; the helpers below only build the message.
    host = d.get("host")
    if type(host) is not str or not 0 < len(host) <= MAX_NAME_LEN:
        host = _name(d, "host", required=True)
    type_ = d.get("type")
    if type(type_) is not str or not 0 < len(type_) <= MAX_NAME_LEN:
        type_ = _name(d, "type", required=True)
    resource = d.get("resource", "")
    if type(resource) is not str or len(resource) > MAX_NAME_LEN:
        resource = _name(d, "resource", required=False)
    sev = d.get("severity")
    severity = Severity.INFO if sev is None else _BY_NAME.get(sev) if type(sev) is str else None
    if severity is None:
        severity = Severity.parse(sev)
    t = d.get("time")
    if type(t) is float and 0.0 <= t < _YEAR_3000:  # noqa: SIM108 - the common case, without a call
        time_ = t
    else:
        time_ = received if t is None else parse_time(t)
    ident = d.get("id")
    if ident is None:
        ident = new_id()
    elif type(ident) is not str or not 0 < len(ident) <= MAX_ID_LEN:
        too_long = type(ident) is str and len(ident) > MAX_ID_LEN
        raise FieldError(
            "id",
            f"must be a non-empty string of at most {MAX_ID_LEN} characters",
            TOO_LARGE if too_long else "invalid",
        )
    message = d.get("message", "")
    if type(message) is not str:
        raise FieldError("message", f"must be a string, got {_json_type(message)}")
    if len(message) > MAX_MESSAGE_LEN:
        raise FieldError("message", f"longer than {MAX_MESSAGE_LEN} characters", TOO_LARGE)
    attributes = d.get("attributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict):
        raise FieldError("attributes", f"must be a JSON object, got {_json_type(attributes)}")
    fp = d.get("fingerprint", "")
    if type(fp) is not str or len(fp) > MAX_NAME_LEN:
        reason = TOO_LARGE if type(fp) is str else "invalid"
        raise FieldError("fingerprint", f"must be a string of at most {MAX_NAME_LEN} characters", reason)
    ev = Event(ident, time_, received, source, host, type_, severity, resource, message, attributes, fp)
    if recorded and not _RECORDED.isdisjoint(d):
        _recorded(ev, d)
    return ev


def texts_fit(
    host: object, type_: object, resource: object, fp: object, ident: object, message: object
) -> bool:
    """Whether the six text fields are exact `str` of the lengths docs/events.md allows: one
    expression for the common case of a built event (the door). `plain_event` repeats it inline (a
    call less per decoded line, measured: 3% of reading one); its property test holds the two to
    the same verdict."""
    return (
        type(host) is str
        and type(type_) is str
        and type(resource) is str
        and type(fp) is str
        and type(ident) is str
        and type(message) is str
        and 0 < len(host) <= MAX_NAME_LEN
        and 0 < len(type_) <= MAX_NAME_LEN
        and len(resource) <= MAX_NAME_LEN
        and len(fp) <= MAX_NAME_LEN
        and 0 < len(ident) <= MAX_ID_LEN
        and len(message) <= MAX_MESSAGE_LEN
    )


def plain_event(d: dict[str, Any], source: str, received: float) -> Event | None:
    """`event_from_dict(d, source, received)` for the common shape of `d`, in one pass: only the
    generic fields, each of its type and length, a severity in lower case, the time as epoch
    seconds (a float) or absent, a message's text and attributes as they are. None for anything
    else, which the caller gives to `event_from_dict` to be refused with the field named (or, for
    the rare shapes left out here, such as a time as text, to be accepted the long way).

    Same verdict and same event as `event_from_dict` (a property test compares the two): every test
    of that function is here, joined into one expression without the messages."""
    if not _all_known(d):  # its keys: a bound C method, no keys view made (a fifth cheaper)
        return None
    host: Any = d.get("host")  # str once texts_fit
    type_: Any = d.get("type")
    resource = d.get("resource", "")
    fp = d.get("fingerprint", "")
    message = d.get("message", "")
    ident = d.get("id")
    if ident is None:  # before the test, to be one; wasted on a document that goes the long way
        ident = new_id()
    sev = d.get("severity")
    severity = _INFO if sev is None else _BY_NAME.get(sev) if type(sev) is str else None
    attributes = d.get("attributes")
    if attributes is None:
        attributes = {}
    t = d.get("time", received)
    # `texts_fit`, inline: one Python call less per event.
    if not (
        type(host) is str
        and type(type_) is str
        and type(resource) is str
        and type(fp) is str
        and type(ident) is str
        and type(message) is str
        and 0 < len(host) <= MAX_NAME_LEN
        and 0 < len(type_) <= MAX_NAME_LEN
        and len(resource) <= MAX_NAME_LEN
        and len(fp) <= MAX_NAME_LEN
        and 0 < len(ident) <= MAX_ID_LEN
        and len(message) <= MAX_MESSAGE_LEN
        and severity is not None
        and type(attributes) is dict
        and type(t) is float
        and 0.0 <= t < _YEAR_3000
    ):
        return None
    # What `Event(...)` would do, without the call of `__init__` (its frame and eleven arguments:
    # measured, a third of building the event). A test checks that every slot is set.
    ev = _new_event(Event)
    ev.id = ident
    ev.time = t
    ev.received = received
    ev.source = source
    ev.host = host
    ev.type = type_
    ev.severity = severity
    ev.resource = resource
    ev.message = message
    ev.attributes = attributes
    # `fingerprint`, its lookup inline: a Python call less for a key seen lately (most lines)
    if not fp:
        key = (host, resource, type_)
        fp = _fingerprints.get(key) or _missed_fingerprint(key)
    ev.fingerprint = fp
    ev.count = 1
    ev.last_seen = t
    return ev


_new_event = object.__new__


def _recorded(ev: Event, d: dict[str, Any]) -> None:
    """The stored event's own fields, when replaying what the store exported."""
    src = d.get("source")
    if src is not None:
        if type(src) is not str or not src:
            raise FieldError("source", "must be a non-empty string")
        ev.source = src
    if "received" in d:
        ev.received = parse_time(d["received"], "received")
    count = d.get("count", 1)
    if type(count) is not int or count < 1:
        raise FieldError("count", "must be a whole number >= 1")
    ev.count = count
    if "last_seen" in d:
        ev.last_seen = parse_time(d["last_seen"], "last_seen")


def dumps_events(events: list[Event]) -> bytes:
    """The wire form of a batch. Through `to_dict`: orjson serialises the slots dataclass itself to
    the same bytes, but reads its fields one attribute lookup at a time (measured: ~40% slower)."""
    return orjson.dumps([e.to_dict() for e in events])


def loads_events(payload: bytes) -> list[Event]:
    return [Event.from_wire(d) for d in orjson.loads(payload)]


_KNOWN = frozenset(EVENT_FIELDS)
_all_known = _KNOWN.issuperset
_RECORDED = frozenset(RECORDED_FIELDS)
_KNOWN_RECORDED = _KNOWN | _RECORDED


def _name(d: dict[str, Any], key: str, required: bool) -> str:
    v = d.get(key)
    if v is None or v == "":
        if required:
            raise FieldError(key, "is required and must be a non-empty string")
        return ""
    if not isinstance(v, str):
        raise FieldError(key, f"must be a string, got {_json_type(v)}")
    if len(v) > MAX_NAME_LEN:
        raise FieldError(key, f"longer than {MAX_NAME_LEN} characters", TOO_LARGE)
    return v


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _suggest(key: str) -> str:
    from correlator.errors import did_you_mean

    hint = did_you_mean(key, EVENT_FIELDS + RECORDED_FIELDS)
    return f" (did you mean {hint!r}?)" if hint else ""
