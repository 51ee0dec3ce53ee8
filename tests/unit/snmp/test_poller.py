"""The poller's hand-off: events named through `hosts`, gauges set and removed, state kept on refusal."""

from __future__ import annotations

from collectors.snmp.capacity import Interface, Sample
from collectors.snmp.poller import CAPACITY, Poller
from collectors.snmp.settings import parse
from correlator.errors import QueueFull
from correlator.event import fingerprint


def gauge(ci, resource, kind):
    for m in CAPACITY.collect():
        for s in m.samples:
            if s.labels == {"ci": ci, "resource": resource, "kind": kind}:
                return s.value
    return None


class Emit:
    def __init__(self):
        self.events = []
        self.refuse = False

    async def __call__(self, events, source):
        if self.refuse:
            raise QueueFull(1, 1, 1.0)
        assert source == "snmp:poll"
        self.events.extend(events)


def poller(emit):
    s = parse({"hosts": {"10.0.0.7": "core-sw7"}, "targets": [{"name": "sw7", "address": "10.0.0.7"}]})
    return Poller(s, emit, s.hosts), s.targets[0]


async def test_events_use_the_hosts_name_and_its_fingerprint():
    emit = Emit()
    p, t = poller(emit)
    await p._apply(t, Sample(None))
    [e] = emit.events
    assert e.host == "core-sw7" and e.type == "snmp.unreachable"
    assert e.fingerprint == fingerprint("core-sw7", "", "snmp.unreachable")
    assert e.attributes["target"] == "10.0.0.7:161"


async def test_gauges_follow_the_samples_and_vanish_when_unreachable():
    emit = Emit()
    p, t = poller(emit)
    up = Interface("Gi0/1", admin=1, oper=1, hc_in=0, hc_out=0, high_speed=1000)
    await p._apply(t, Sample(100, {1: up}, storage={"/": (30, 100)}))
    assert gauge("sw7", "/", "storage") == 0.3
    await p._apply(t, Sample(None))
    assert gauge("sw7", "/", "storage") is None


async def test_refused_events_keep_the_old_state_so_the_change_is_seen_again():
    emit = Emit()
    p, t = poller(emit)
    emit.refuse = True
    await p._apply(t, Sample(None))
    emit.refuse = False
    await p._apply(t, Sample(None))
    assert [e.type for e in emit.events] == ["snmp.unreachable"]
