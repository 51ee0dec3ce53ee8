"""Polling a real snmpd from the real daemon: reachability, reboots, capacity gauges, unreachable targets."""

from __future__ import annotations

import pytest

from tests.support.snmp import V3_SETTINGS, free_udp_port, snmpd

pytestmark = pytest.mark.integration


USER = {k: v for k, v in V3_SETTINGS.items() if k != "engine_ids"}


def polling_daemon(make_daemon, *targets):
    """The daemon polling `targets` every second, quick to call a silent target unreachable."""
    snmp = {"listen": f"127.0.0.1:{free_udp_port()}", "poll_timeout": "0.3s", "poll_retries": 0}
    return make_daemon(collectors={"snmp": {**snmp, "targets": [{"interval": "1s", **t} for t in targets]}})


def test_poll_snmpd_for_availability_and_capacity(make_daemon, tmp_path):
    dead = free_udp_port()  # nothing answers there
    with snmpd(tmp_path) as (port, _):
        d = polling_daemon(
            make_daemon,
            {"name": "lab-sw1", "address": f"127.0.0.1:{port}"},
            {
                "name": "lab-sw1-v3",
                "address": f"127.0.0.1:{port}",
                "version": "v3",
                "user": USER,
                "poll": ["interfaces"],
            },
            {"name": "gone-rtr", "address": f"127.0.0.1:{dead}"},
        )
        d.wait_for(lambda: d.metric("correlator_snmp_target_up", {"ci": "lab-sw1"}) == 1, what="lab-sw1 up")
        d.wait_for(lambda: d.metric("correlator_snmp_target_up", {"ci": "lab-sw1-v3"}) == 1, what="v3 up")
        unreachable = d.wait_for(
            lambda: [e for e in d.events() if e["type"] == "snmp.unreachable"], what="unreachable event"
        )
        assert unreachable[0]["host"] == "gone-rtr" and unreachable[0]["severity"] == "major"
        # / is a fixed disk on any Linux snmpd; lo gets a rate from the second poll on
        d.wait_for(
            lambda: d.metric("correlator_capacity_utilization_ratio", {"ci": "lab-sw1", "resource": "/"}) > 0,
            what="storage gauge for /",
        )
        d.wait_for(
            lambda: d.metric("correlator_snmp_polls_total", {"result": "ok"}) >= 4,
            what="several polls",
        )
        # v3 (through pysnmp) polls slower than v2c: under load its second poll, the first with a
        # rate, may come after the four ok polls counted above
        d.wait_for(
            lambda: any(
                s
                for s in d.request("GET", "/metrics")[2].decode().splitlines()
                if s.startswith('correlator_capacity_utilization_ratio{ci="lab-sw1-v3",kind="interface_in"')
            ),
            what="interface_in gauge of the v3 target",
        )
    # the agent restarts: sysUpTime goes back, so the next answer means a reboot
    with snmpd(tmp_path, port):
        rebooted = d.wait_for(
            lambda: [e for e in d.events() if e["type"] == "snmp.rebooted" and e["host"] == "lab-sw1"],
            what="rebooted event",
        )
        assert rebooted[0]["severity"] == "warning"


def test_a_v3_target_restarted_with_a_new_engine_id_is_polled_again(make_daemon, tmp_path):
    """The agent comes back under another SNMPv3 engine id (a replaced chassis, a reset agent): the
    poller forgets the id it had learned, discovers the new one and polls on without a restart."""
    with snmpd(tmp_path, engine_id="correlator-a") as (port, _):
        target = {"name": "lab-v3", "address": f"127.0.0.1:{port}", "version": "v3", "user": USER}
        d = polling_daemon(make_daemon, {**target, "poll": ["reachability"]})

        def ok():
            return d.metric("correlator_snmp_polls_total", {"result": "ok"})

        d.wait_for(lambda: d.metric("correlator_snmp_target_up", {"ci": "lab-v3"}) == 1, what="v3 up")
    with snmpd(tmp_path, port, engine_id="correlator-b"):
        restarted = ok()
        d.wait_for(lambda: ok() >= restarted + 2, what="v3 polls answered under the new engine id")
        d.wait_for(lambda: d.metric("correlator_snmp_target_up", {"ci": "lab-v3"}) == 1, what="v3 up again")
    # The failure is logged with its cause instead of being dropped silently.
    assert f"snmp: v3 poll of lab-v3 (127.0.0.1:{port}) failed: No SNMP response" in d.log()
    assert "discovering its engine id again" in d.log()
