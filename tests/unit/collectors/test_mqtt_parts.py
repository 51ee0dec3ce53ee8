"""MQTT collector pieces without a broker: topic templates, settings errors, decoding, thresholds,
and the push-back loop that keeps a batch unacknowledged until the queue takes it."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from collectors.mqtt import connection
from collectors.mqtt.connection import EMIT_TRIES, BrokerConnection
from collectors.mqtt.decode import Decoder, Malformed
from collectors.mqtt.settings import Thresholds, parse_settings
from collectors.mqtt.telemetry import level
from collectors.mqtt.topics import parse_template
from correlator.errors import ConfigError, QueueFull
from correlator.event import Event

BROKERS = [{"host": "127.0.0.1", "port": 1883}]


def settings(*subs: dict):
    return parse_settings({"brokers": BROKERS, "subscriptions": list(subs)})


def test_topic_template_is_filter_and_capture():
    t = parse_template("sites/{site}/devices/{host}/events")
    assert t.filter == "sites/+/devices/+/events"
    assert t.match("sites/paris/devices/pdu-1/events") == {"site": "paris", "host": "pdu-1"}
    assert t.match("sites/paris/devices/pdu-1/other") is None
    assert t.match("sites/paris/devices/pdu-1/events/x") is None
    multi = parse_template("{host}/#")
    assert multi.filter == "+/#"
    assert multi.match("h/a/b") == {"host": "h"}
    assert multi.match("$SYS/broker/load") is None


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("a/#/b", "'#' must be the last level"),
        ("a/x{y}", "must be a literal"),
        ("{a}/{a}", "used twice"),
        ("", "expected a topic filter"),
    ],
)
def test_bad_topic_templates(topic, error):
    with pytest.raises(ValueError, match=error):
        parse_template(topic)


@pytest.mark.parametrize(
    ("sub", "error"),
    [
        ({"topic": "a/b", "qos": 3}, r"subscriptions\[0\]\.qos': expected 0, 1 or 2"),
        ({"topic": "a/b", "format": "xml"}, r"subscriptions\[0\]\.format'"),
        ({"topic": "a/b", "fields": {"hots": "$.h"}}, r"fields\.hots': not an event field"),
        ({"topic": "a/b", "fields": {"host": "$..h"}}, r"fields\.host': expected a JSON path"),
        ({"topic": "a/b", "defaults": {"severity": "huge"}}, r"defaults\.severity'"),
        ({"topic": "a/b", "severity_map": {"1": "bad"}}, r"severity_map\.1'"),
        ({"topic": "a/b", "qso": 1}, r"subscriptions\[0\]\.qso': unknown key \(did you mean 'qos'\?\)"),
        ({"topic": "a/b", "telemetry": {"warning": 90, "critical": 80}}, r"telemetry\.critical'"),
        ({"topic": "a/b", "brokers": ["nope"]}, r"no broker named 'nope'"),
        ({"topic": "a/b", "format": "text", "fields": {"host": "$.h"}}, r"a text payload has no fields"),
    ],
)
def test_subscription_errors_name_the_key(sub, error):
    with pytest.raises(ConfigError, match=error):
        settings(sub)


def test_broker_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"brokers\[0\]\.port'"):
        parse_settings({"brokers": [{"port": 0}], "subscriptions": [{"topic": "a"}]})
    with pytest.raises(ConfigError, match=r"brokers\[0\]\.reconnect_min'"):
        parse_settings({"brokers": [{"reconnect_min": "soon"}], "subscriptions": [{"topic": "a"}]})
    with pytest.raises(ConfigError, match=r"collectors\.mqtt\.brokers'"):
        parse_settings({"subscriptions": [{"topic": "a"}]})
    with pytest.raises(ConfigError, match=r"tls\.ca_file'"):
        parse_settings({"brokers": [{"tls": {"ca_file": "/no/such"}}], "subscriptions": [{"topic": "a"}]})


def test_json_payload_levels_win_over_payload_and_rest_goes_to_attributes():
    d = Decoder(settings({"name": "s", "topic": "x/{host}/ev", "defaults": {"type": "t"}}).subscriptions[0])
    payload = orjson.dumps({"host": "liar", "severity": "major", "room": "B2", "attributes": {"a": 1}})
    ev = d.decode("x/real/ev", {"host": "real"}, payload, 1000.0)
    assert ev is not None
    assert (ev.host, ev.type, ev.severity.value, ev.source) == ("real", "t", "major", "mqtt:s")
    assert ev.attributes == {"room": "B2", "a": 1, "topic": "x/real/ev"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "malformed_json"),
        (b'"a string"', "not_object"),
        (orjson.dumps({"severity": "loud"}), "invalid_field"),
        (orjson.dumps({"time": "yesterday"}), "invalid_field"),
        (b"x" * 300_000, "too_large"),
    ],
)
def test_malformed_payload_reasons(payload, reason):
    d = Decoder(settings({"name": "s", "topic": "x/{host}/ev", "defaults": {"type": "t"}}).subscriptions[0])
    with pytest.raises(Malformed) as e:
        d.decode("x/h/ev", {"host": "h"}, payload, 1000.0)
    assert e.value.reason == reason


def test_missing_host_names_the_path():
    sub = {"name": "m", "topic": "y/#", "fields": {"host": "$.dev.name", "type": "$.kind"}}
    d = Decoder(settings(sub).subscriptions[0])
    with pytest.raises(Malformed, match=r"\$\.dev\.name gave nothing"):
        d.decode("y/1", {}, orjson.dumps({"kind": "k"}), 1.0)


def test_telemetry_json_value_path_and_non_numbers():
    sub = {
        "name": "cpu",
        "topic": "m/{host}/cpu",
        "telemetry": {"value": "$.load.pct", "warning": 80},
    }
    d = Decoder(settings(sub).subscriptions[0])
    assert d.decode("m/a/cpu", {"host": "a"}, orjson.dumps({"load": {"pct": 10}}), 1.0) is None
    ev = d.decode("m/a/cpu", {"host": "a"}, orjson.dumps({"load": {"pct": 85.5}}), 2.0)
    assert ev is not None and ev.severity.value == "warning" and ev.type == "telemetry"
    assert ev.attributes["value"] == 85.5 and ev.attributes["threshold"] == 80
    for bad in (b'{"load": {"pct": "high"}}', b'{"load": {}}', b'{"load": {"pct": true}}'):
        with pytest.raises(Malformed) as e:
            d.decode("m/a/cpu", {"host": "a"}, bad, 3.0)
        assert e.value.reason == "not_a_number"


def test_telemetry_series_are_bounded():
    sub = {"name": "b", "topic": "b/{host}", "format": "text", "telemetry": {"max_series": 2}}
    d = Decoder(settings(sub).subscriptions[0])
    d.decode("b/1", {"host": "1"}, b"1", 1.0)
    d.decode("b/2", {"host": "2"}, b"1", 1.0)
    d.decode("b/1", {"host": "1"}, b"2", 1.0)  # known series: fine
    with pytest.raises(Malformed) as e:
        d.decode("b/3", {"host": "3"}, b"1", 1.0)
    assert e.value.reason == "too_many_series"


def test_telemetry_with_capacity_feeds_the_capacity_forecast():
    from correlator import capacity

    sub = {"name": "pdu-load", "topic": "p/{host}", "format": "text", "telemetry": {"capacity": 32}}
    d = Decoder(settings(sub).subscriptions[0])
    for i, amps in enumerate((8, 12, 16)):
        d.decode("p/pdu-mqtt-test", {"host": "pdu-mqtt-test"}, str(amps).encode(), 1000.0 + i * 3600)
    series = capacity.TRACKER.series[("pdu-mqtt-test", "", "pdu-load")]
    assert series.ratio == 0.5
    assert series.seconds_to_full == pytest.approx(4 * 3600)  # +1/8 of capacity an hour from half
    capacity.forget("pdu-mqtt-test", "", "pdu-load")


def test_threshold_levels_with_hysteresis():
    above = Thresholds(warning=70, critical=90, below=False, hysteresis=5)
    assert [level(v, above, 0) for v in (10, 70, 90)] == [0, 1, 2]
    assert level(87, above, 2) == 2  # within hysteresis of critical
    assert level(84, above, 2) == 1
    assert level(66, above, 1) == 1
    assert level(64, above, 1) == 0
    assert level(60, above, 2) == 0  # straight down when far below both
    low = Thresholds(warning=20, critical=10, below=True, hysteresis=2)  # e.g. battery %
    assert [level(v, low, 0) for v in (50, 20, 5)] == [0, 1, 2]
    assert level(11, low, 2) == 2
    assert level(13, low, 2) == 1
    assert level(23, low, 1) == 0


async def test_full_queue_is_waited_out_never_dropped():
    calls: list[int] = []

    async def emit(events: list[Event], source: str) -> None:
        calls.append(len(events))
        if len(calls) < 3:
            raise QueueFull(10, 10, 0.01)

    s = settings({"name": "s", "topic": "x/{host}", "defaults": {"type": "t"}})
    conn = BrokerConnection(s.brokers[0], [Decoder(s.subscriptions[0])], emit)
    ev = Event("i", 1.0, 1.0, "mqtt:s", "h", "t")
    await asyncio.wait_for(conn._emit_durably({"mqtt:s": [ev, ev]}), 5)
    assert calls == [2, 2, 2]


async def test_a_group_emit_keeps_refusing_is_dead_lettered_after_bounded_tries_then_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
):
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:  # the backoff is recorded, not slept
        waits.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(connection, "_sleep", no_wait)
    calls: list[str] = []
    dead: list[tuple[list[str], str]] = []
    refuse_dead_letter = [True]

    async def emit(events: list[Event], source: str) -> None:
        calls.append(source)
        if source == "mqtt:bad":
            raise RuntimeError("journal refused it")

    async def dead_letter(events: list[Event], reason: str, error: BaseException | str) -> None:
        if refuse_dead_letter[0]:  # the dead-letter store down too: keep retrying, never acknowledge
            refuse_dead_letter[0] = False
            raise OSError("store down")
        dead.append(([e.id for e in events], reason))

    s = settings({"name": "s", "topic": "x/{host}", "defaults": {"type": "t"}})
    conn = BrokerConnection(s.brokers[0], [Decoder(s.subscriptions[0])], emit, dead_letter)
    good, bad = Event("g", 1.0, 1.0, "mqtt:good", "h", "t"), Event("b", 1.0, 1.0, "mqtt:bad", "h", "t")
    await asyncio.wait_for(conn._emit_durably({"mqtt:good": [good], "mqtt:bad": [bad]}), 10)
    assert calls.count("mqtt:good") == 1
    assert calls.count("mqtt:bad") == EMIT_TRIES + 1  # one more: the first dead-letter write failed
    assert dead == [(["b"], "journal_rejected")]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8]  # doubling, as a real run would have slept them


def test_qos0_beyond_the_buffer_is_dropped_and_counted_but_qos1_never():
    from paho.mqtt.client import MQTTMessage

    from correlator import metrics

    s = parse_settings(
        {"brokers": [{"name": "ovl", "max_buffered_qos0": 2}], "subscriptions": [{"topic": "a/{host}"}]}
    )
    conn = BrokerConnection(s.brokers[0], [], lambda events, source: None)  # type: ignore[arg-type]
    inbox: asyncio.Queue = asyncio.Queue()
    counter = metrics.EVENTS_REJECTED.labels("mqtt:ovl", "overload")
    before = counter._value.get()
    for qos in (0, 0, 0, 1, 1):
        m = MQTTMessage(topic=b"a/h")
        m.qos = qos
        conn._receive(inbox, m)
    assert [m.qos for m in inbox._queue] == [0, 0, 1, 1]
    assert counter._value.get() - before == 1
