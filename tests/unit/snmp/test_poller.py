"""The poller's hand-off: events named through `hosts`, gauges set and removed, state kept on refusal;
its table walk ends for an agent whose OIDs do not move forward or whose tables never end."""

from __future__ import annotations

import asyncio

import pytest

from collectors.snmp.capacity import Interface, Sample
from collectors.snmp.poller import CAPACITY, COLUMNS, MAX_REQUESTS, POLLS, SYS_UPTIME, Poller
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


class Agent:
    """A scripted responder in place of the poller's GETBULK: answer(oids, reps) -> varbinds."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = 0

    async def __call__(self, target, non_rep, reps, oids):
        self.requests += 1
        vbs = [(SYS_UPTIME, 4200)] if non_rep else []
        return vbs + self.answer(oids[non_rep:], reps)


def walking(p, answer):
    agent = Agent(answer)
    p._bulk = agent  # type: ignore[method-assign]
    return agent


def polls(result):
    return POLLS.labels(result)._value.get()


ALL_COLUMNS = [c for kind in COLUMNS.values() for c in kind.values()]
DESCR = COLUMNS["interfaces"]["descr"]


def table(n):
    """An agent whose columns have rows 1..n: each repetition answers what follows each OID."""

    def answer(oids, reps):
        out = []
        for _ in range(reps):
            nxt = []
            for o in oids:
                col = next((c for c in ALL_COLUMNS if o == c or o.startswith(c + ".")), None)
                i = 0 if col is None or o == col else int(o[len(col) + 1 :])
                nxt.append(f"{col}.{i + 1}" if col is not None and i < n else "1.3.6.1.9")
            out += [(o, 1) for o in nxt]
            oids = nxt
        return out

    return answer


@pytest.mark.timeout(10)
async def test_a_walk_follows_the_columns_over_several_requests():
    p, t = poller(Emit())
    agent = walking(p, table(40))
    sample = await p._sample(t)
    assert sample.uptime == 4200 and len(sample.interfaces) == 40
    assert agent.requests == 3  # 16 rows, 32, then the last 8 and the end of each column


@pytest.mark.timeout(10)
async def test_an_agent_answering_the_same_row_again_fails_the_poll(caplog):
    p, t = poller(Emit())
    # Every column answers its first row at every repetition: the OIDs never move forward.
    agent = walking(p, lambda oids, reps: [(o if o not in ALL_COLUMNS else o + ".1", 1) for o in oids] * reps)
    with pytest.raises(RuntimeError, match="OID not increasing"):
        await p._sample(t)
    assert agent.requests == 1  # the first answer already repeats its rows
    before = polls("error")
    p._sem = asyncio.Semaphore(1)
    await p.poll(t)
    assert polls("error") == before + 1
    assert not p._sem.locked()  # the poll gave its slot back
    assert "snmp: polling sw7 failed: RuntimeError('OID not increasing: " in caplog.text


@pytest.mark.timeout(10)
async def test_an_agent_going_backwards_between_requests_fails_the_poll():
    p, t = poller(Emit())
    # Rows 1..16, then, asked for what follows row 16, row 3 again.
    agent = walking(p, lambda oids, reps: [(f"{DESCR}.3", b"x")])
    first = [(f"{DESCR}.{i}", b"x") for i in range(1, 17)]
    with pytest.raises(RuntimeError, match=r"OID not increasing: .*\.3 after .*\.16"):
        await p._columns(t, {"descr": DESCR}, first)
    assert agent.requests == 1


@pytest.mark.timeout(30)
async def test_a_poll_ends_after_its_request_budget():
    p, t = poller(Emit())
    # An honest but slow agent: one new row per answer, of a table that never ends.
    agent = walking(p, lambda oids, reps: [(f"{DESCR}.{int(oids[0].rsplit('.', 1)[1]) + 1}", b"x")])
    with pytest.raises(RuntimeError, match=f"{MAX_REQUESTS} requests"):
        await p._columns(t, {"descr": DESCR}, [(f"{DESCR}.1", b"x")])
    assert agent.requests == MAX_REQUESTS - 1  # the poll's first GETBULK is the first of them
