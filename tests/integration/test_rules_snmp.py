"""The shipped rules on real traps: net-snmp's snmptrap -> SNMP collector -> rules -> store."""

from __future__ import annotations

import pytest

from tests.support.daemon import REPO
from tests.support.snmp import free_udp_port, run_tool

pytestmark = pytest.mark.integration

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF = "1.3.6.1.2.1.2.2.1."  # ifIndex .1, ifDescr .2, ifAdminStatus .7


def trap(addr, tmp_path, oid, *varbinds):
    r = run_tool("snmptrap", ["-v", "2c", "-c", "public", addr, "", oid, *varbinds], tmp_path)
    assert r.returncode == 0, r.stderr


def test_snmp_traps_through_the_shipped_rules(make_daemon, tmp_path):
    port = free_udp_port()
    addr = f"127.0.0.1:{port}"
    d = make_daemon(
        rules_dir=str(REPO / "rules"),
        inventory_file=str(REPO / "rules" / "tests" / "inventory.csv"),
        collectors={
            "webhook": {},
            "snmp": {"listen": addr, "communities": ["public"], "hosts": {"127.0.0.1": "core-sw1"}},
        },
    )
    link = (f"{IF}1.3", "i", "3", f"{IF}2.3", "s", "Gi0/3", f"{IF}7.3", "i", "1")
    trap(addr, tmp_path, LINK_DOWN, *link)
    first = d.wait_for(
        lambda: [e for e in d.events() if e["type"] == "IF-MIB::linkDown"], what="linkDown stored"
    )[0]
    assert (first["host"], first["severity"], first["resource"]) == ("core-sw1", "major", "Gi0/3")
    assert first["message"] == "interface Gi0/3 on core-sw1 is down"
    assert first["attributes"]["category"] == "network" and first["attributes"]["site"] == "par1"
    assert (first["attributes"]["ifAdminStatus"], first["attributes"]["ifAdminStatus_value"]) == ("up", 1)

    trap(addr, tmp_path, LINK_DOWN, *link)  # a repeat folds into the stored event
    d.wait_for(lambda: d.events("type=IF-MIB::linkDown")[0]["count"] == 2, what="repeat folded")

    admin_down = (f"{IF}1.4", "i", "4", f"{IF}2.4", "s", "Gi0/4", f"{IF}7.4", "i", "2")
    trap(addr, tmp_path, LINK_DOWN, *admin_down)  # shut down on purpose: dropped as noise
    trap(addr, tmp_path, COLD_START)
    cold = d.wait_for(lambda: d.events("type=SNMPv2-MIB::coldStart"), what="coldStart stored")[0]
    assert cold["severity"] == "minor" and cold["message"] == "core-sw1 restarted (cold start)"
    assert len(d.events("type=IF-MIB::linkDown")) == 1
    assert (
        d.metric(
            "correlator_rule_dropped_events_total", {"rule": "drop-admin-down-link-events", "reason": "drop"}
        )
        == 1
    )
