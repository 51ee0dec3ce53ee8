"""The Alertmanager conversion of a whole body: each alert's result does not depend on its neighbours
(times parsed once per body are shared, refusals are not), and ids stay those already stored."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from collectors.webhook import alertmanager, grafana
from correlator import door
from correlator.errors import FieldError
from correlator.event import Event

RECEIVED = 1796611200.0  # 2026-12-07T02:40:00Z

odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["", "node1:9100", "h:1\n", "[::1]:80", "x\x00y", "critical", "PAGE", "x" * 300]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
times = st.one_of(
    odd,
    st.sampled_from(
        [
            "2026-12-07T02:30:00Z",
            "2026-12-07T02:30:00.5+02:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",  # out of range once the offset is applied
            "2026-13-01T00:00:00Z",
            "garbage",
        ]
    ),
)
label_names = st.sampled_from(
    ["alertname", "instance", "host", "job", "severity", "device", "service", "mountpoint", "x"]
)
label_values = st.one_of(
    st.text(max_size=8), st.sampled_from(["node1:9100", "a:b", "critical", "Warn", "x" * 300, "h:12\n"])
)
well_formed = st.fixed_dictionaries(
    {
        "labels": st.builds(
            lambda name, more: {"alertname": name, **more},
            st.sampled_from(["HighCPU", "x" * 300, "a\x00"]),
            st.dictionaries(label_names, label_values, max_size=6),
        ),
        "status": st.sampled_from(["firing", "resolved"]),
    },
    optional={
        "annotations": st.dictionaries(st.sampled_from(["summary", "description", "message"]), odd),
        "startsAt": times,
        "endsAt": times,
        "fingerprint": odd,
        "generatorURL": odd,
        "values": odd,
    },
)
any_shape = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.one_of(st.dictionaries(label_names, st.one_of(label_values, odd), max_size=5), odd),
        "annotations": odd,
        "status": st.one_of(st.sampled_from(["firing", "resolved", "Firing"]), odd),
        "startsAt": times,
        "endsAt": times,
    },
)
alerts = st.lists(st.one_of(well_formed, any_shape, odd), max_size=8)


def outcome(r: Event | FieldError) -> Any:
    if isinstance(r, Event):
        return r.to_dict()
    return (type(r).__name__, r.field, r.message, r.reason)


@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(alerts, st.sampled_from(["alertmanager", "grafana"]))
def test_each_alert_converts_as_if_it_were_alone_in_its_body(items, kind):
    convert = alertmanager.make({}, "w") if kind == "alertmanager" else grafana.make({}, "w")
    together = convert({"receiver": "r", "alerts": items}, "webhook:am", RECEIVED)
    assert [i for i, _ in together] == list(range(len(items)))
    for (i, r), item in zip(together, items, strict=True):
        [(_, alone)] = convert({"receiver": "r", "alerts": [item]}, "webhook:am", RECEIVED)
        assert outcome(r) == outcome(alone), i


def test_a_shared_bad_time_is_refused_for_every_alert_and_a_good_one_shared():
    convert = alertmanager.make({}, "w")
    bad = {"labels": {"alertname": "A"}, "status": "firing", "startsAt": "garbage"}
    good = {"labels": {"alertname": "B"}, "status": "firing", "startsAt": "2026-12-07T02:30:00Z"}
    results = convert({"alerts": [bad, good, bad, good]}, "webhook:am", RECEIVED)
    errors = [r for _, r in results if isinstance(r, FieldError)]
    assert [(e.field, e.message) for e in errors] == [
        ("startsAt", "must be an ISO 8601 time such as 2026-11-30T12:00:00Z, got 'garbage'")
    ] * 2
    assert [r.time for _, r in results if isinstance(r, Event)] == [RECEIVED - 600] * 2


def test_the_event_id_covers_fingerprint_status_and_times():
    alert = {
        "labels": {"alertname": "A", "instance": "node1:9100"},
        "status": "firing",
        "fingerprint": "abc",
        "startsAt": "2026-12-07T02:30:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    [(_, ev)] = alertmanager.make({}, "w")({"alerts": [alert]}, "webhook:am", RECEIVED)
    parts = ("alertmanager:abc", "firing", "2026-12-07T02:30:00Z", "0001-01-01T00:00:00Z")
    assert ev.id == hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    assert (ev.host, ev.fingerprint) == ("node1", "alertmanager:abc")


def test_the_message_and_alertname_are_read_as_webhook_text_fields():
    convert = alertmanager.make({}, "w")

    def one(labels: dict[str, str], annotations: dict[str, Any]) -> Any:
        [(_, r)] = convert({"alerts": [{"labels": labels, "status": "firing", "annotations": annotations}]},
                           "webhook:am", RECEIVED)  # fmt: skip
        return r.message if isinstance(r, Event) else (r.field, r.message)

    a = {"alertname": "A"}
    assert one(a, {"summary": "s", "description": "d"}) == "s"
    assert one(a, {"summary": "", "description": "d"}) == "d"
    assert one(a, {"summary": None, "message": 42}) == "42"
    assert one(a, {}) == "A"
    assert one(a, {"summary": True}) == ("summary", "must be a string, got bool")
    refused = ("labels.alertname", "is required and must be a non-empty string")
    assert one({}, {"summary": "s"}) == one({"alertname": ""}, {}) == refused


def _nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


# Values at the door's limits: U+0000 (escaped in the body), non-ASCII text, numbers that print
# longer than written, nesting around MAX_DEPTH, texts around the name, message and size limits.
limits = st.one_of(
    odd,
    st.sampled_from(["a\x00b", "\x00", "é€😀", "\u2028", 9e15, 1e300, -(2**63), 2**64 - 1]),
    st.integers(28, 35).map(_nested),
    st.sampled_from([255, 256, 257, 16384, 16385, 26000, 40000]).map(lambda n: "y" * n),
)
edge_alert = st.fixed_dictionaries(
    {
        "labels": st.builds(
            lambda name, more: {"alertname": name, **more},
            st.one_of(st.sampled_from(["HighCPU", "x" * 256, "x" * 257, "a\x00", "é"]), st.text(max_size=4)),
            st.dictionaries(
                label_names, st.one_of(label_values, st.sampled_from(["\x00", "z" * 257])), max_size=4
            ),
        ),
        "status": st.sampled_from(["firing", "resolved"]),
    },
    optional={
        "annotations": st.dictionaries(
            st.sampled_from(["summary", "description", "message", "x"]), limits, max_size=3
        ),
        "startsAt": times,
        "fingerprint": st.one_of(odd, st.sampled_from(["f" * 243, "f" * 244, "f\x00"])),
        "generatorURL": limits,
        "values": limits,
    },
)


@settings(max_examples=200, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.lists(st.one_of(edge_alert, well_formed, any_shape, odd), max_size=4),
    st.sampled_from(["alertmanager", "grafana"]),
    st.sampled_from([None, "r", "é\x00"]),
    st.booleans(),
)
def test_the_plain_body_flag_gives_the_same_verdicts(items, kind, receiver, ascii_only):
    """A body `door.plain_json` passes lets each alert skip the door's text and document checks, and
    so does, in a larger body, an alert whose annotations and copied fields are text: the verdict
    (accepted with the same event, or refused for the same reason and field) is the same."""
    doc: dict[str, Any] = {"alerts": items}
    if receiver is not None:
        doc["receiver"] = receiver
    _same_verdicts(doc, kind, ascii_only)


@settings(max_examples=200, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.lists(st.one_of(edge_alert, well_formed), min_size=1, max_size=4),
    st.sampled_from(["alertmanager", "grafana"]),
    st.booleans(),
)
def test_alerts_judged_one_by_one_get_the_same_verdicts(items, kind, ascii_only):
    """The same for bodies with too many brackets for `plain_json`, without U+0000 (every one made
    a "0"): those whose size lets their alerts be judged one by one."""
    _same_verdicts(_without_nul({"alerts": items * 16, "receiver": "r"}), kind, ascii_only)


@settings(max_examples=20, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.integers(min_value=-400, max_value=400),
    st.sampled_from(["a", "é", '"', "\u2028", "\U0001f600"]),
    st.sampled_from(["alertmanager", "grafana"]),
    st.booleans(),
)
def test_a_body_at_the_per_alert_size_limit_gets_the_same_verdicts(shift, char, kind, ascii_only):
    """One alert whose texts bring the body to about the largest size still judged alert by alert
    (65,504 bytes), a little under or over it: the same verdicts as the full check."""
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "Big", "instance": "n1", "note": char * 2000},
        "annotations": {"summary": "s", "description": ""},
        "startsAt": "2026-12-07T02:39:00Z",
        "generatorURL": "http://x/" + char * 100,
    }
    doc = {"alerts": [alert], "receiver": "r"}
    size = len(json.dumps(doc, ensure_ascii=ascii_only).encode())
    per_char = len(json.dumps(char, ensure_ascii=ascii_only).encode()) - 2
    room = (door.MAX_EVENT_BYTES - 64) // 2 - size + shift
    alert["annotations"]["description"] = char * max(0, room // per_char)
    _same_verdicts(doc, kind, ascii_only)


def _same_verdicts(doc: dict[str, Any], kind: str, ascii_only: bool) -> None:
    convert = alertmanager.make({}, "w") if kind == "alertmanager" else grafana.make({}, "w")
    # Written as senders may (escaped or raw non-ASCII); what orjson refuses (NaN, integers beyond
    # 64 bits) is a malformed body, never converted.
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        reject()
    plain = door.plain_json(body)
    per_alert = not plain and len(body) * 2 + 64 <= door.MAX_EVENT_BYTES and door.plain_strings(body)
    event("plain" if plain else "judged alert by alert" if per_alert else "not plain")
    full = convert(orjson.loads(body), "webhook:am", RECEIVED)
    flagged = convert(orjson.loads(body), "webhook:am", RECEIVED, body)
    assert [(i, outcome(r)) for i, r in flagged] == [(i, outcome(r)) for i, r in full]


def _without_nul(v: Any) -> Any:
    if isinstance(v, str):
        return v.replace("\x00", "0")
    if isinstance(v, dict):
        return {_without_nul(k): _without_nul(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_without_nul(x) for x in v]
    return v


def test_a_small_plain_body_skips_the_door_checks_and_a_large_one_is_judged_alert_by_alert(
    monkeypatch,
):
    seen: list[bool] = []
    real = door.check
    scanned: list[bytes] = []
    real_plain_json = door.plain_json

    def check(ev: Event, check_time: bool = True, typed: bool = False, plain: bool = False) -> None:
        seen.append(plain)
        real(ev, check_time, typed, plain)

    def plain_json(text: bytes) -> bool:
        scanned.append(text)
        return real_plain_json(text)

    monkeypatch.setattr(door, "check", check)
    monkeypatch.setattr(door, "plain_json", plain_json)
    convert = alertmanager.make({}, "w")
    bare = {"labels": {"alertname": "A"}, "status": "firing"}
    alert = {**bare, "annotations": {"summary": "s"}}
    nested = {**alert, "annotations": {"summary": "s", "n": [1]}}
    for alerts, plain, whole in (
        ([alert], [True], True),
        ([bare] * 15, [True] * 15, True),
        ([alert] * 15, [True] * 15, False),  # each alert's brackets too many for the body
        ([alert] * 16, [True] * 16, False),  # too many brackets for the body: each alert is flat
        ([alert, nested] * 8, [True, False] * 8, False),  # the nested one has the full check
        ([{**alert, "generatorURL": 1}] * 16, [False] * 16, False),  # a copied number
        ([{**alert, "x": "y" * 40000}] * 16, [False] * 16, False),  # a body too large to judge
        ([{**alert, "x": "\x00"}] * 16, [False] * 16, False),  # U+0000 somewhere in the body
    ):
        seen.clear()
        scanned.clear()
        body = orjson.dumps({"alerts": alerts})
        convert(orjson.loads(body), "webhook:am", RECEIVED, body)
        assert seen == plain
        assert scanned == ([body] if len(alerts) <= 15 else [])  # a large group is not scanned whole
        assert real_plain_json(body) == whole
    seen.clear()
    convert({"alerts": [alert] * 16}, "webhook:am", RECEIVED)  # no body (a form): the full check
    assert seen == [False] * 16


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=4), st.sampled_from(["critical", "CRITICAL", "Warn", "page", "İ", "ΣΑΣ", "σας"])
    ),
    st.dictionaries(
        st.one_of(st.text(max_size=4), st.sampled_from(["İ", "ΣΑΣ", "Major"])),
        st.sampled_from(["critical", "major", "info"]),
        max_size=3,
    ),
)
def test_a_severity_is_looked_up_in_lower_case(raw, severity_map):
    """A value found as it is in the table (of lower-case keys) maps as its lowered copy would."""
    opts = alertmanager.parse_options({"severity_map": severity_map}, "w", "alertmanager")
    assert opts.severity_map is not None
    alert = {"labels": {"alertname": "A", "severity": raw}, "status": "firing"}
    ev = alertmanager.alert_event(alert, "webhook:am", RECEIVED, opts, {})
    expected = opts.severity_map.get(raw.lower(), opts.default_severity) if raw else opts.default_severity
    assert ev.severity is expected
