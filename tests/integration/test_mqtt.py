"""The MQTT collector against a real Mosquitto and the real daemon: mapping, malformed payloads,
telemetry crossings, persistent sessions, broker restarts and ack-after-durable under kill -9."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.mosquitto import Mosquitto, mqtt_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    b = Mosquitto.create(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


def wait_events(d, n: int) -> list[dict]:
    def enough() -> list[dict] | None:
        ev = d.events()
        return ev if len(ev) >= n else None

    events = d.wait_for(enough, what=f"{n} events")
    assert len(events) == n
    return events


def connected(d) -> bool:
    return d.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1


def test_wildcard_subscriptions_map_topic_levels_and_payload_fields(make_daemon, broker):
    subs = [
        {
            "name": "events",
            "topic": "t1/sites/{site}/devices/{host}/events",
            "defaults": {"type": "device.event"},
        },
        {
            "name": "alarms",
            "topic": "t1/alarms/{host}/{type}",
            "format": "text",
            "qos": 0,
            "defaults": {"severity": "major"},
        },
        {
            "name": "legacy",
            "topic": "t1/legacy/#",
            "fields": {"host": "$.dev.name", "type": "$.kind", "severity": "$.lvl", "message": "$.text"},
            "attributes": {"room": "$.dev.room"},
            "severity_map": {"1": "critical", "5": "info"},
        },
    ]
    d = make_daemon(collectors=mqtt_config(broker, "t1", subs))
    d.wait_for(lambda: connected(d), what="connected")
    door = {"severity": "minor", "message": "door open"}
    legacy = {"dev": {"name": "ups-7", "room": "B2"}, "kind": "battery", "lvl": 1}
    broker.publish(
        [
            ("t1/sites/paris/devices/pdu-1/events", orjson.dumps(door)),
            ("t1/legacy/a/b/c", orjson.dumps(legacy)),
        ]
    )
    broker.publish([("t1/alarms/bldg-2/smoke", "smoke in hall 3")], qos=0)
    events = wait_events(d, 3)
    by_host = {e["host"]: e for e in events}
    pdu = by_host["pdu-1"]
    assert (pdu["type"], pdu["severity"], pdu["message"]) == ("device.event", "minor", "door open")
    assert pdu["attributes"]["site"] == "paris"
    assert pdu["attributes"]["topic"] == "t1/sites/paris/devices/pdu-1/events"
    assert pdu["source"] == "mqtt:events"
    alarm = by_host["bldg-2"]
    assert (alarm["type"], alarm["severity"], alarm["message"]) == ("smoke", "major", "smoke in hall 3")
    ups = by_host["ups-7"]
    assert (ups["type"], ups["severity"], ups["attributes"]["room"]) == ("battery", "critical", "B2")


def test_malformed_payloads_are_counted_and_the_subscription_carries_on(make_daemon, broker):
    subs = [{"name": "ev", "topic": "t2/{host}/events", "defaults": {"type": "t"}}]
    d = make_daemon(collectors=mqtt_config(broker, "t2", subs))
    d.wait_for(lambda: connected(d), what="connected")
    broker.publish(
        [
            ("t2/h1/events", b"{not json"),
            ("t2/h1/events", b"[1, 2]"),
            ("t2/h1/events", orjson.dumps({"severity": "apocalyptic"})),
            ("t2/h1/events", b"\xff\xfe"),
            ("t2/h1/events", orjson.dumps({"message": "still alive"})),
        ]
    )
    events = d.wait_for(lambda: d.events(), what="the good event")
    assert [e["message"] for e in events] == ["still alive"]

    def rejected(reason: str) -> float:
        return d.metric("correlator_events_rejected_total", {"source": "mqtt:ev", "reason": reason})

    assert rejected("malformed_json") == 2
    assert rejected("not_object") == 1
    assert rejected("invalid_field") == 1
    assert "dropped message on 't2/h1/events'" in d.log()


def test_telemetry_updates_gauges_and_only_crossings_become_events(make_daemon, broker):
    subs = [
        {
            "name": "temp",
            "topic": "t3/{host}/telemetry/{resource}",
            "format": "text",
            "qos": 0,
            "telemetry": {"warning": 70, "critical": 90, "hysteresis": 5, "capacity": 100},
        }
    ]
    d = make_daemon(collectors=mqtt_config(broker, "t3", subs))
    d.wait_for(lambda: connected(d), what="connected")
    values = [20, 25, 72, 74, 91, 88, 95, 84, 60, 66, 30]  # ok ok W W C C(hysteresis) C W ok ok ok
    broker.publish([("t3/rack-1/telemetry/inlet_temp", str(v)) for v in values], qos=1)
    broker.publish([("t3/rack-2/telemetry/inlet_temp", "40")], qos=1)
    d.wait_for(
        lambda: d.metric("correlator_telemetry_samples_total", {"subscription": "temp"}) == 12, what="samples"
    )
    events = wait_events(d, 4)
    seen = sorted((e["attributes"]["value"], e["severity"]) for e in events)
    assert seen == [(60.0, "clear"), (72.0, "warning"), (84.0, "warning"), (91.0, "critical")]
    assert {e["host"] for e in events} == {"rack-1"}
    assert len({e["fingerprint"] for e in events}) == 1  # crossings and the clear share one fingerprint
    assert d.metric("correlator_telemetry_series", {"subscription": "temp", "state": "ok"}) == 2
    assert d.metric("correlator_telemetry_value_max", {"subscription": "temp"}) == 40
    assert d.metric("correlator_telemetry_utilization_ratio", {"subscription": "temp"}) == pytest.approx(0.4)


def test_persistent_session_gets_what_was_published_while_the_daemon_was_down(make_daemon, broker):
    subs = [{"name": "ev", "topic": "t4/{host}/events", "defaults": {"type": "t"}}]
    d = make_daemon(collectors=mqtt_config(broker, "t4-fixed-id", subs))
    d.wait_for(lambda: connected(d), what="connected")
    assert d.stop() == 0
    n = 3000  # above Mosquitto's default queue of 1000 per offline client, raised in the fixture
    broker.publish([("t4/h/events", orjson.dumps({"attributes": {"seq": i}})) for i in range(n)])
    d.start()
    d.wait_for(lambda: d.metric("correlator_events_stored_total") >= n, timeout=30, what="backlog stored")
    seqs = {e["attributes"]["seq"] for e in d.events()}
    assert seqs == set(range(n))


def test_reconnects_after_the_broker_restarts(make_daemon, tmp_path: Path):
    own = Mosquitto.create(tmp_path / "own-broker")
    own.start()
    try:
        subs = [{"name": "ev", "topic": "t5/{host}/events", "defaults": {"type": "t"}}]
        d = make_daemon(collectors=mqtt_config(own, "t5", subs))
        d.wait_for(lambda: connected(d), what="connected")
        own.stop()
        d.wait_for(lambda: not connected(d), what="disconnect noticed")
        assert d.get("/readyz")[0] == 503
        own.start()
        d.wait_for(lambda: connected(d), what="reconnected")
        own.publish([("t5/after/events", orjson.dumps({"message": "after restart"}))])
        d.wait_for(lambda: d.events(), what="event after restart")
        assert d.metric("correlator_mqtt_connects_total", {"broker": "lab", "outcome": "lost"}) >= 1
    finally:
        own.stop()


def test_kill_9_loses_nothing_that_was_acknowledged(make_daemon, broker):
    subs = [{"name": "ev", "topic": "t6/{host}/events", "defaults": {"type": "t"}}]
    d = make_daemon(collectors=mqtt_config(broker, "t6-fixed-id", subs))
    d.wait_for(lambda: connected(d), what="connected")
    n = 6000
    publisher = threading.Thread(
        target=broker.publish,
        args=([("t6/h/events", orjson.dumps({"attributes": {"seq": i}})) for i in range(n)],),
    )
    publisher.start()
    d.wait_for(lambda: d.metric("correlator_events_stored_total") >= 500, what="some stored")
    d.kill()  # SIGKILL mid-stream: whatever the broker saw acked must be in the journal
    publisher.join()
    d.start()
    d.wait_for(lambda: len(d.events()) >= n, timeout=30, what="every message after restart")
    seqs = [e["attributes"]["seq"] for e in d.events()]
    assert set(seqs) == set(range(n))


def test_tls_with_username_and_password(make_daemon, tmp_path: Path):
    own = Mosquitto.create(tmp_path / "tls-broker", tls=True, user=("noc", "pa55"))
    own.start()
    try:
        (tmp_path / "mqtt.pass").write_text("pa55\n")
        subs = [{"name": "ev", "topic": "t7/{host}/events", "defaults": {"type": "t"}}]
        cfg = mqtt_config(own, "t7", subs)
        cfg["mqtt"]["brokers"][0].update(
            {
                "tls": {"ca_file": str(own.ca_file)},
                "username": "noc",
                "password_file": str(tmp_path / "mqtt.pass"),
            }
        )
        d = make_daemon(collectors=cfg)
        d.wait_for(lambda: connected(d), what="connected over TLS")
        own.publish([("t7/secure/events", orjson.dumps({"message": "over tls"}))])
        assert wait_events(d, 1)[0]["host"] == "secure"
        d.stop()

        cfg["mqtt"]["brokers"][0]["password"] = "wrong"
        del cfg["mqtt"]["brokers"][0]["password_file"]
        d2 = make_daemon(collectors=cfg)
        refused = {"broker": "lab", "outcome": "not_authorized"}
        d2.wait_for(lambda: d2.metric("correlator_mqtt_connects_total", refused) >= 1, what="refused")
        assert not connected(d2)
        assert "pa55" not in d2.log() and "wrong" not in d2.log()
    finally:
        own.stop()


@pytest.mark.parametrize("qos", [1, 2])
def test_acknowledged_messages_are_not_delivered_again_after_a_restart(make_daemon, broker, qos):
    subs = [{"name": "ev", "topic": f"t8q{qos}/{{host}}/events", "qos": qos, "defaults": {"type": "t"}}]
    d = make_daemon(collectors=mqtt_config(broker, f"t8-{qos}", subs))
    d.wait_for(lambda: connected(d), what="connected")
    broker.publish(
        [(f"t8q{qos}/h/events", orjson.dumps({"attributes": {"seq": i}})) for i in range(5)], qos=qos
    )
    wait_events(d, 5)
    assert d.stop() == 0
    d.start()
    d.wait_for(lambda: connected(d), what="reconnected")
    broker.publish([(f"t8q{qos}/h/events", orjson.dumps({"attributes": {"seq": 5}}))], qos=qos)
    events = wait_events(d, 6)  # the sixth only: PUBACK/PUBCOMP of the first five reached the broker
    assert sorted(e["attributes"]["seq"] for e in events) == list(range(6))
