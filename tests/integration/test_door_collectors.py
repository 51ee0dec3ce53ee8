"""The door with each collector's real peer: a poison message among good ones never stalls anything.

MQTT (Mosquitto): the poison is refused, counted and acknowledged, the good messages around it
are stored, and a restart does not see it again. SNMP (net-snmp snmptrap): OctetStrings holding
NUL never reach a text field, and a notification too large for the door is refused and counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from tests.support.mosquitto import Mosquitto, mqtt_config
from tests.support.snmp import free_udp_port, run_tool

pytestmark = pytest.mark.integration

SUBS = [{"name": "ev", "topic": "door/{host}/events", "defaults": {"type": "t"}}]
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX, IF_DESCR = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.2"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    b = Mosquitto.create(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


def nested_300() -> bytes:
    """The issue's poison: JSON nested 300 levels, about 2 KB, beyond what orjson will write."""
    return b'{"attributes":' + b'{"l":' * 300 + b"1" + b"}" * 300 + b"}"


def good(seq: int) -> bytes:
    return orjson.dumps({"message": f"good {seq}", "attributes": {"seq": seq}})


def at_least(d, n: int, what: str) -> list[dict]:
    def enough() -> list[dict] | None:
        events = d.events()
        return events if len(events) >= n else None

    return d.wait_for(enough, what=what)


def rejected(d, reason: str) -> float:
    return d.metric("correlator_events_rejected_total", {"source": "mqtt:ev", "reason": reason})


def test_mqtt_poison_among_good_messages_is_refused_counted_and_acknowledged(make_daemon, broker):
    poison = nested_300()
    assert 1500 < len(poison) < 3000
    d = make_daemon(collectors=mqtt_config(broker, "door-poison", SUBS))
    d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1, what="connected")
    future = time.time() + 30 * 86400
    broker.publish(
        [
            ("door/sw1/events", good(0)),
            ("door/sw1/events", poison),
            ("door/sw1/events", good(1)),
            ("door/sw1/events", orjson.dumps({"message": "nul \u0000 inside"})),
            ("door/sw1/events", orjson.dumps({"message": "from the future", "time": future})),
            ("door/sw1/events", orjson.dumps({"time": "9999-12-31T23:59:59-01:00"})),
            ("door/sw1/events", good(2)),
        ]
    )
    events = at_least(d, 3, "the good messages")
    assert sorted(e["attributes"]["seq"] for e in events) == [0, 1, 2]
    d.wait_for(lambda: rejected(d, "too_deep") == 1, what="the poison counted")
    assert rejected(d, "bad_text") == 1
    assert rejected(d, "time_out_of_range") == 2
    assert d.get("/readyz")[0] == 200
    assert d.get("/api/v1/events?limit=1000")[0] == 200

    # Everything was acknowledged: after a restart the broker has nothing left to deliver again,
    # and the subscription goes on with what comes next.
    assert d.stop() == 0
    d.start()
    d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1, what="reconnected")
    broker.publish([("door/sw1/events", good(3))])
    events = at_least(d, 4, "after the restart")
    assert sorted(e["attributes"]["seq"] for e in events) == [0, 1, 2, 3]
    assert rejected(d, "too_deep") == 0 and rejected(d, "bad_text") == 0
    assert d.get("/readyz")[0] == 200


def trap(addr: str, descr_hex: str, tmp_path) -> None:
    args = ["-v", "2c", "-c", "public", addr, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1"]
    r = run_tool("snmptrap", [*args, f"{IF_DESCR}.1", "x", descr_hex], tmp_path)
    assert r.returncode == 0, r.stderr


def test_snmp_octet_strings_with_nul_never_reach_a_text_field(make_daemon, tmp_path):
    port = free_udp_port()
    settings = {"listen": f"127.0.0.1:{port}", "communities": ["public"], "max_datagram_bytes": 65535}
    d = make_daemon(collectors={"snmp": settings})
    addr = f"127.0.0.1:{port}"
    trap(addr, "47 69 30 2F 30", tmp_path)  # "Gi0/0"
    trap(addr, "47 69 30 2F 31 00", tmp_path)  # "Gi0/1" with its C terminator
    trap(addr, "47 69 00 30 2F 32", tmp_path)  # a NUL inside: binary, shown as hex
    # 45,000 bytes of binary (one datagram) become 134,999 characters of hex: beyond the door's
    # 128 KiB per event, so refused and counted while the traps around it are stored.
    trap(addr, "00" * 45000, tmp_path)
    trap(addr, "47 69 30 2F 33", tmp_path)  # "Gi0/3"
    events = at_least(d, 4, "four traps stored")
    assert sorted(e["resource"] for e in events) == ["47:69:00:30:2f:32", "Gi0/0", "Gi0/1", "Gi0/3"]
    assert all("\x00" not in orjson.dumps(e).decode() for e in events)
    d.wait_for(
        lambda: d.metric("correlator_events_rejected_total", {"source": "snmp", "reason": "too_large"}) == 1,
        what="the oversized trap refused and counted",
    )
    assert d.get("/readyz")[0] == 200
