"""Poll samples -> ratios and events: unreachable/reboot, counter wrap, agent restart, thresholds."""

from __future__ import annotations

from collectors.snmp.capacity import COUNTER64, Interface, Sample, TargetState

TH = {"interface": 0.9, "cpu": 0.9, "storage": 0.9}


def run(state, sample, now=0.0):
    return state.update(sample, now, TH)


def itf(hc_in, hc_out, oper=1, speed=1000):
    return Interface("Gi0/1", admin=1, oper=oper, hc_in=hc_in, hc_out=hc_out, high_speed=speed)


def test_unreachable_once_then_clear_when_answering_again():
    s = TargetState("sw1")
    s, events, _ = run(s, Sample(None))
    assert [(e.type, e.severity.value, e.host) for e in events] == [("snmp.unreachable", "major", "sw1")]
    s, events, _ = run(s, Sample(None))
    assert events == []  # no repeat while still down
    s, events, _ = run(s, Sample(1000))
    assert [(e.type, e.severity.value) for e in events] == [("snmp.unreachable", "clear")]


def test_utilisation_from_hc_counters_and_agent_uptime():
    s = TargetState("sw1")
    s, _, ratios = run(s, Sample(10_000, {1: itf(0, 0)}))
    assert ratios == {}  # first sample: a baseline only
    # 10 s of agent time, 1 Gbit/s: 250 MB in = 200 Mbit/s = 0.2
    s, _, ratios = run(s, Sample(11_000, {1: itf(250_000_000, 0)}))
    assert abs(ratios[("Gi0/1", "interface_in")] - 0.2) < 1e-9
    assert ratios[("Gi0/1", "interface_out")] == 0.0


def test_counter_wrap_is_a_small_delta_not_a_negative_one():
    s = TargetState("sw1")
    s, _, _ = run(s, Sample(10_000, {1: itf(COUNTER64 - 1000, 0)}))
    s, _, ratios = run(s, Sample(11_000, {1: itf(249_999_000, 0)}))
    assert abs(ratios[("Gi0/1", "interface_in")] - 0.2) < 1e-9


def test_agent_restart_is_a_reboot_and_no_rate_across_it():
    s = TargetState("sw1")
    s, _, _ = run(s, Sample(500_000, {1: itf(10**12, 10**12)}))
    s, events, ratios = run(s, Sample(300, {1: itf(1000, 1000)}))
    assert [(e.type, e.severity.value) for e in events] == [("snmp.rebooted", "warning")]
    assert ratios == {}
    s, _, ratios = run(s, Sample(1300, {1: itf(1000 + 12_500_000, 1000)}))
    assert abs(ratios[("Gi0/1", "interface_in")] - 0.01) < 1e-9


def test_interface_down_and_up_events_only_for_admin_up_interfaces():
    s = TargetState("sw1")
    s, events, _ = run(s, Sample(100, {1: itf(0, 0, oper=2)}))
    assert [(e.type, e.severity.value, e.resource) for e in events] == [
        ("snmp.interface.down", "major", "Gi0/1")
    ]
    assert events[0].message == "sw1: ifOperStatus down"
    assert events[0].attributes == {"ifOperStatus": "down", "ifOperStatus_value": 2}
    s, events, _ = run(s, Sample(200, {1: itf(0, 0, oper=2)}))
    assert events == []
    s, events, _ = run(s, Sample(300, {1: itf(0, 0, oper=1)}))
    assert [(e.type, e.severity.value) for e in events] == [("snmp.interface.down", "clear")]
    assert events[0].attributes == {"ifOperStatus": "up", "ifOperStatus_value": 1}
    admin_down = Interface("Gi0/2", admin=2, oper=2)
    _, events, _ = run(s, Sample(400, {2: admin_down}))
    assert events == []


def test_threshold_crossing_with_hysteresis():
    s = TargetState("srv1")
    s, events, ratios = run(s, Sample(100, cpu_loads=[95, 97], storage={"/": (50, 100)}))
    assert ratios[("cpu", "cpu")] == 0.96 and ratios[("/", "storage")] == 0.5
    assert [(e.type, e.severity.value, e.resource, e.attributes["kind"]) for e in events] == [
        ("snmp.capacity.high", "warning", "cpu", "cpu")
    ]
    s, events, _ = run(s, Sample(200, cpu_loads=[88]))
    assert events == []  # below 0.9 but inside the hysteresis band
    s, events, _ = run(s, Sample(300, cpu_loads=[80]))
    assert [(e.type, e.severity.value) for e in events] == [("snmp.capacity.high", "clear")]


def test_update_leaves_the_old_state_untouched():
    s = TargetState("sw1")
    new, _, _ = run(s, Sample(None))
    assert s.reachable is None and new.reachable is False
