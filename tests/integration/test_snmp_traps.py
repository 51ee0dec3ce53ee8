"""Traps and informs from real net-snmp tools into the real daemon: v1, v2c, v3, informs, bad input."""

from __future__ import annotations

import socket

import pytest

from tests.support.snmp import (
    ACME_MIB,
    SENDER_ENGINE_ID,
    V3_SETTINGS,
    V3_SHA2_SETTINGS,
    V3_SHA2_USER,
    V3_USER,
    free_udp_port,
    run_tool,
    v3_message,
)

pytestmark = pytest.mark.integration

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
TRAP_V2 = 0xA7
IF_INDEX, IF_DESCR = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.2"


def start(make_daemon, **snmp):
    port = free_udp_port()
    settings = {
        "listen": f"127.0.0.1:{port}",
        "communities": ["public", "noc-ro"],
        "users": [V3_SETTINGS, V3_SHA2_SETTINGS],
        "hosts": {"10.1.2.3": "edge-rtr1"},
        **snmp,
    }
    d = make_daemon(collectors={"snmp": settings})
    return d, f"127.0.0.1:{port}"


def sent(result):
    assert result.returncode == 0, result.stderr
    return result


def n_events(d, n):
    def enough():
        events = d.events()
        return events if len(events) == n else None

    return d.wait_for(enough, what=f"{n} events stored")


def by_type(d, type_):
    return [e for e in d.events() if e["type"] == type_]


def test_v1_v2c_and_v3_traps_become_events(make_daemon, tmp_path):
    d, addr = start(make_daemon)
    sent(
        run_tool(
            "snmptrap",
            [
                "-v",
                "2c",
                "-c",
                "public",
                addr,
                "",
                LINK_DOWN,
                f"{IF_INDEX}.3",
                "i",
                "3",
                f"{IF_DESCR}.3",
                "s",
                "Gi0/3",
            ],
            tmp_path,
        )
    )
    # v1 enterprise-specific trap with agent-addr 10.1.2.3 (named by the hosts map)
    sent(
        run_tool(
            "snmptrap",
            [
                "-v",
                "1",
                "-c",
                "noc-ro",
                addr,
                "1.3.6.1.4.1.99999",
                "10.1.2.3",
                "6",
                "17",
                "",
                "1.3.6.1.4.1.99999.1.1",
                "s",
                "fan failed",
            ],
            tmp_path,
        )
    )
    # v1 generic linkUp (generic-trap 3) -> IF-MIB::linkUp per RFC 3584
    sent(
        run_tool(
            "snmptrap",
            [
                "-v",
                "1",
                "-c",
                "public",
                addr,
                "1.3.6.1.4.1.99999",
                "10.9.9.9",
                "3",
                "0",
                "",
                f"{IF_INDEX}.2",
                "i",
                "2",
            ],
            tmp_path,
        )
    )
    sent(
        run_tool(
            "snmptrap",
            ["-v", "3", "-e", SENDER_ENGINE_ID, *V3_USER, addr, "", LINK_DOWN, f"{IF_INDEX}.5", "i", "5"],
            tmp_path,
        )
    )
    events = n_events(d, 4)
    by = {(e["attributes"]["snmp_version"], e["type"]): e for e in events}

    v2 = by[("v2c", "IF-MIB::linkDown")]
    assert v2["host"] == "127.0.0.1" and v2["resource"] == "Gi0/3" and v2["source"] == "snmp"
    assert v2["attributes"]["ifIndex"] == 3 and v2["attributes"]["ifDescr"] == "Gi0/3"
    assert v2["severity"] == "info"

    v1 = by[("v1", "1.3.6.1.4.1.99999.0.17")]  # unresolved OIDs stay numeric
    assert v1["host"] == "edge-rtr1"
    assert v1["attributes"]["1.3.6.1.4.1.99999.1.1"] == "fan failed"
    assert v1["attributes"]["agent_address"] == "10.1.2.3"

    up = by[("v1", "IF-MIB::linkUp")]
    assert up["host"] == "10.9.9.9" and up["resource"] == "ifIndex.2"

    v3 = by[("v3", "IF-MIB::linkDown")]
    assert v3["attributes"]["ifIndex"] == 5 and v3["resource"] == "ifIndex.5"


def test_informs_are_answered_once_stored(make_daemon, tmp_path):
    d, addr = start(make_daemon)
    r = sent(
        run_tool(
            "snmpinform",
            ["-v", "2c", "-c", "public", "-t", "3", "-r", "1", addr, "", "1.3.6.1.6.3.1.1.5.1"],
            tmp_path,
        )
    )
    assert r.returncode == 0
    sent(
        run_tool(
            "snmpinform",
            ["-v", "3", *V3_USER, "-t", "3", "-r", "1", addr, "", "1.3.6.1.6.3.1.1.5.2"],
            tmp_path,
        )
    )
    types = {e["type"] for e in n_events(d, 2)}
    assert types == {"SNMPv2-MIB::coldStart", "SNMPv2-MIB::warmStart"}
    assert d.metric("correlator_snmp_informs_answered_total") == 2
    assert d.metric("correlator_snmp_dropped_total") == 0


def test_bad_input_is_counted_and_the_daemon_keeps_serving(make_daemon, tmp_path):
    d, addr = start(make_daemon, max_datagram_bytes=1024)
    host, port = addr.split(":")
    run_tool("snmptrap", ["-v", "2c", "-c", "wrong", addr, "", LINK_DOWN], tmp_path)
    run_tool(
        "snmptrap", ["-v", "1", "-c", "wrong", addr, "1.3.6.1.4.1.1", "10.0.0.1", "2", "0", ""], tmp_path
    )
    bad_v3 = [a if a != "authpass123" else "not-the-key" for a in V3_USER]
    run_tool("snmptrap", ["-v", "3", "-e", SENDER_ENGINE_ID, *bad_v3, addr, "", LINK_DOWN], tmp_path)
    unknown = [a if a != "noc" else "stranger" for a in V3_USER]
    run_tool("snmptrap", ["-v", "3", "-e", SENDER_ENGINE_ID, *unknown, addr, "", LINK_DOWN], tmp_path)
    unlisted = "80000000010203ff"  # a known user and its keys, from an engine id nobody configured
    run_tool("snmptrap", ["-v", "3", "-e", unlisted, *V3_USER, addr, "", LINK_DOWN], tmp_path)
    # No user name: net-snmp will not send it; it is discovery's, and no user's under an engine id.
    no_user = v3_message(b"", SENDER_ENGINE_ID, TRAP_V2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"\x30\x05garbage", b"hello", b"\x30" + b"\x00" * 2000, no_user):
            s.sendto(junk, (host, int(port)))
    sent(run_tool("snmptrap", ["-v", "2c", "-c", "public", addr, "", LINK_DOWN], tmp_path))
    d.wait_for(lambda: by_type(d, "IF-MIB::linkDown"), what="the good trap after the bad input")
    assert len(d.events()) == 1

    def dropped(reason):
        return d.metric("correlator_snmp_dropped_total", {"reason": reason})

    d.wait_for(lambda: dropped("malformed") == 2, what="2 malformed datagrams counted")
    assert dropped("bad_community") == 2
    assert dropped("auth_failed") == 1
    assert dropped("unknown_user") == 2
    assert dropped("unknown_engine_id") == 1
    assert dropped("too_large") == 1
    # The cause, the sender and the user; never a key.
    assert (
        f"dropped a datagram from 127.0.0.1 (unknown_engine_id): v3 message from engine id {unlisted}"
        " for user 'noc': that engine id is not configured" in d.log()
    )
    assert "authpass123" not in d.log() and "privpass123" not in d.log()


@pytest.mark.timeout(60)
def test_v1_trap_with_a_negative_specific_or_an_unknown_generic_is_malformed(make_daemon, tmp_path):
    d, addr = start(make_daemon)
    # A valid community is all it takes: the trap OID is enterprise.0.specific, which has no
    # negative sub-identifier, and RFC 1157 knows generic-trap 0..6 only.
    for generic, specific in (("6", "-1"), ("6", "-2147483648"), ("7", "0"), ("-1", "0")):
        v1 = ["-v", "1", "-c", "public", addr, "1.3.6.1.4.1.9", "127.0.0.1", generic, specific, ""]
        sent(run_tool("snmptrap", v1, tmp_path))
    sent(run_tool("snmptrap", ["-v", "2c", "-c", "public", addr, "", LINK_DOWN], tmp_path))
    d.wait_for(lambda: by_type(d, "IF-MIB::linkDown"), what="the good trap after the bad ones")
    d.wait_for(
        lambda: d.metric("correlator_snmp_dropped_total", {"reason": "malformed"}) == 4,
        what="4 malformed v1 traps counted",
    )
    assert d.get("/healthz")[0] == 200
    assert len(d.events()) == 1
    assert "v1 specific-trap -1 is negative" in d.log()
    assert d.stop() == 0  # and it still stops on SIGTERM


def test_taken_port_does_not_stop_the_daemon(make_daemon, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        d = make_daemon(collectors={"webhook": {}, "snmp": {"listen": f"127.0.0.1:{port}"}})
        status, _ = d.get("/healthz")
        assert status == 200
        d.wait_for(lambda: "cannot listen on udp" in d.log(), what="the bind error in the log")
        status, doc = d.get("/readyz")
        assert status == 503 and doc["checks"]["collector:snmp"] is False
    # the port is free again: the collector binds it on its next retry (every 5 s)
    d.wait_for(lambda: d.get("/readyz")[0] == 200, timeout=15, what="snmp listening after the retry")


def test_sha2_aes256_user_and_a_compiled_vendor_mib(make_daemon, tmp_path):
    from correlator.cli import main

    mibs = tmp_path / "mibs"
    mibs.mkdir()
    (mibs / "ACME-MIB.txt").write_text(ACME_MIB)
    # the daemon's default cache: <data_dir>/mibs, filled before it starts
    assert main(["mibs", "compile", str(mibs), "--cache", str(tmp_path / "var" / "mibs")]) == 0
    d, addr = start(make_daemon)
    acme = [
        "1.3.6.1.4.1.99999.0.17",
        "1.3.6.1.4.1.99999.1.1.0",
        "i",
        "1200",
        "1.3.6.1.4.1.99999.1.2.0",
        "s",
        "fan2",
    ]
    sent(run_tool("snmptrap", ["-v", "3", "-e", SENDER_ENGINE_ID, *V3_SHA2_USER, addr, "", *acme], tmp_path))
    sent(run_tool("snmpinform", ["-v", "3", *V3_SHA2_USER, "-t", "3", "-r", "1", addr, "", *acme], tmp_path))
    events = n_events(d, 2)
    assert {e["type"] for e in events} == {"ACME-MIB::acmeFanFailed"}
    assert all(
        e["attributes"]["acmeFanSpeed"] == 1200 and e["attributes"]["acmeFanName"] == "fan2" for e in events
    )
