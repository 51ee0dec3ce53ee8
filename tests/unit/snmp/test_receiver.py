"""The listener in-process on a real UDP socket: informs answered only after a durable emit; any datagram
is either an event or a counted drop, never an exception; settings errors name the key; v1 mapping."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pysnmp.proto import api

from collectors.snmp import ber
from collectors.snmp.mapping import Mapper, v1_trap_oid
from collectors.snmp.oids import Resolver
from collectors.snmp.receiver import DROPPED, TrapReceiver
from collectors.snmp.settings import parse
from correlator.errors import ConfigError, QueueFull, StorageUnavailable
from tests.support.snmp import AUTH, REPORTABLE, free_udp_port, integer, tlv, v2c_message, v3_message

COLD_START = [("1.3.6.1.2.1.1.3.0", ("ticks", 5)), ("1.3.6.1.6.3.1.1.4.1.0", ("oid", "1.3.6.1.6.3.1.1.5.1"))]


class GatedEmit:
    """An emit that returns only when the test opens the gate (or raises what it is told to)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.events: list = []
        self.calls = 0
        self.error: Exception | None = None

    async def __call__(self, events, source):
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.events.extend(events)


async def started(emit, **extra):
    r = TrapReceiver(parse({"listen": f"127.0.0.1:{free_udp_port()}", **extra}), Mapper(Resolver(), {}), emit)
    await r.start()
    return r


async def client(port):
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", port))
    return transport, answers


def record_sends(r: TrapReceiver) -> list[bytes]:
    """What the receiver sends, recorded as it sends it (and still sent): an answer the receiver
    has not sent by now never will be for this datagram, however long the test waited."""
    sent: list[bytes] = []
    send = r._send

    def recording(data: bytes, addr) -> None:
        sent.append(data)
        send(data, addr)

    r._send = recording  # type: ignore[method-assign]
    return sent


async def test_inform_is_answered_only_after_emit_returns():
    emit = GatedEmit()
    r = await started(emit)
    sent = record_sends(r)
    transport, answers = await client(r.address[1])
    transport.sendto(ber.encode_notification(1, b"public", ber.INFORM, 77, COLD_START))
    async with asyncio.timeout(5):
        while emit.calls == 0:
            await asyncio.sleep(0.001)  # the socket is real: wait for the kernel to deliver
    assert sent == [] and answers.empty()
    emit.gate.set()
    answer = await asyncio.wait_for(answers.get(), 5)
    m = answer[answer.index(b"\xa2") :]  # Response-PDU
    assert m and emit.events[0].type == "SNMPv2-MIB::coldStart"
    transport.close()
    await r.stop()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (QueueFull(10, 10, 1.0), "queue_full"),
        (StorageUnavailable("database or disk is full", 1.0), "storage_unavailable"),
    ],
)
async def test_inform_not_answered_when_ingest_pushes_back(error, reason):
    emit = GatedEmit()
    emit.error = error
    emit.gate.set()
    r = await started(emit)
    sent = record_sends(r)
    before = DROPPED.labels(reason)._value.get()
    transport, answers = await client(r.address[1])
    transport.sendto(ber.encode_notification(1, b"public", ber.INFORM, 78, COLD_START))
    async with asyncio.timeout(5):
        while DROPPED.labels(reason)._value.get() == before:
            await asyncio.sleep(0.001)
    # The batch is settled (counted as refused): its replies were dropped with it, never sent.
    assert sent == [] and answers.empty()  # the sender retransmits
    assert r._replies == []
    transport.close()
    await r.stop()


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=600))
def test_fuzz_datagrams_are_events_or_counted_drops(data):
    async def go():
        emit = GatedEmit()
        emit.gate.set()
        r = TrapReceiver(parse({}), Mapper(Resolver(), {}), emit)
        r._slow = _slow_path()
        total = sum(s.value for m in DROPPED.collect() for s in m.samples if s.name.endswith("_total"))
        r.datagram_received(data, ("127.0.0.1", 9))
        after = sum(s.value for m in DROPPED.collect() for s in m.samples if s.name.endswith("_total"))
        assert len(r._events) + (after - total) >= 1 or data[:1] == b"\x30"

    asyncio.run(go())


def pysnmp_v1(generic: int, specific: int) -> bytes:
    """A v1 Trap-PDU as pysnmp encodes it: it takes any generic-trap and specific-trap, as senders do."""
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
    pdu = p.TrapPDU()
    p.apiTrapPDU.set_defaults(pdu)
    p.apiTrapPDU.set_enterprise(pdu, (1, 3, 6, 1, 4, 1, 9))
    p.apiTrapPDU.set_agent_address(pdu, "10.1.2.3")
    p.apiTrapPDU.set_generic_trap(pdu, generic)
    p.apiTrapPDU.set_specific_trap(pdu, specific)
    p.apiTrapPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), p.Integer(3))])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "public")
    p.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def total_dropped(reason: str | None = None) -> float:
    return sum(
        s.value
        for m in DROPPED.collect()
        for s in m.samples
        if s.name.endswith("_total") and reason in (None, s.labels["reason"])
    )


_INT32 = st.integers(-(2**31), 2**31 - 1)


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(
    generic=st.integers(-2, 8) | _INT32,
    specific=st.integers(-2, 2) | _INT32,
    mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
)
@example(generic=6, specific=-1, mutations=[])
@example(generic=7, specific=0, mutations=[])
@example(generic=-1, specific=0, mutations=[])
def test_fuzz_mutated_v1_traps_are_events_or_counted_drops(generic, specific, mutations):
    raw = bytearray(pysnmp_v1(generic, specific))
    for i, b in mutations:
        raw[i % len(raw)] = b

    async def go():
        emit = GatedEmit()
        emit.gate.set()
        r = TrapReceiver(parse({}), Mapper(Resolver(), {}), emit)
        r._slow = _slow_path()
        total, malformed = total_dropped(), total_dropped("malformed")
        r.datagram_received(bytes(raw), ("127.0.0.1", 9))
        assert len(r._events) + (total_dropped() - total) == 1
        if not mutations:  # RFC 1157: generic-trap is 0..6, specific-trap becomes a sub-identifier
            valid = 0 <= generic <= 6 and specific >= 0
            assert (len(r._events), total_dropped("malformed") - malformed) == ((1, 0) if valid else (0, 1))

    asyncio.run(go())


_ENGINE = None


def _slow_path():
    from collectors.snmp.engine import SlowPath

    global _ENGINE
    if _ENGINE is None:
        _ENGINE = SlowPath(["public"], [], None)
    return _ENGINE


def test_v1_mapping_follows_rfc_3584():
    ent = ber.oid_bytes("1.3.6.1.4.1.9")
    assert ber.oid_str(v1_trap_oid(ent, 2, 0)) == "1.3.6.1.6.3.1.1.5.3"  # linkDown
    assert ber.oid_str(v1_trap_oid(ent, 6, 300)) == "1.3.6.1.4.1.9.0.300"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("generic", "specific"), [(6, -1), (6, -(2**31)), (2, -5), (7, 0), (-1, 0)])
def test_v1_trap_with_generic_outside_0_to_6_or_negative_specific_is_unusual(generic, specific):
    with pytest.raises(ber.Unusual):
        v1_trap_oid(ber.oid_bytes("1.3.6.1.4.1.9"), generic, specific)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"listen": "nowhere"}, "'collectors.snmp.listen': expected HOST:PORT"),
        ({"communties": []}, "'collectors.snmp.communties': unknown key"),
        ({"users": [{"name": "u", "auth_protocol": "MD5"}]}, "'collectors.snmp.users[0].auth_protocol'"),
        ({"users": [{"name": "u", "auth_protocol": "SHA", "auth_key": "short"}]}, "at least 8 characters"),
        (
            {"targets": [{"name": "a", "address": "h", "version": "v1"}]},
            "'collectors.snmp.targets[0].version'",
        ),
        ({"targets": [{"name": "a", "address": "h", "poll": ["cpu"]}]}, "'collectors.snmp.targets[0].poll'"),
        ({"thresholds": {"cpu": 2}}, "'collectors.snmp.thresholds.cpu': expected a ratio"),
    ],
)
def test_settings_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        parse(raw)
    assert message in str(e.value)


def test_defaults():
    s = parse({})
    assert s.listen == ("127.0.0.1", 1162) and s.communities == ("public",) and s.targets == ()
    t = parse({"targets": [{"name": "a", "address": "10.0.0.1", "poll": ["interfaces"]}]}).targets[0]
    assert (t.port, t.version, t.interval, t.poll) == (161, "v2c", 60.0, ("reachability", "interfaces"))


# -- messages refused by their header never reach pysnmp's decoder --

OWN_ENGINE_ID = "80000000010a0b0c0d"
SENDER_ENGINE_ID = "8000000001020304"
USERS = [
    {"name": "noc", "auth_protocol": "SHA", "auth_key": "authpass123", "engine_ids": [SENDER_ENGINE_ID]},
    {"name": "open", "engine_ids": [SENDER_ENGINE_ID]},  # no keys: noAuthNoPriv
]
USM_UNKNOWN_USER_NAMES = ber.oid_bytes("1.3.6.1.6.3.15.1.1.3.0")
USM_UNKNOWN_ENGINE_IDS = ber.oid_bytes("1.3.6.1.6.3.15.1.1.4.0")
GET, SET = 0xA0, 0xA3


def v2c(community: bytes, pdu_type: int, n_varbinds: int = 500) -> bytes:
    """500 varbinds: about 8 KB (the default max_datagram_bytes), tens of milliseconds for pysnmp to decode."""
    return v2c_message(community, pdu_type, n_varbinds)


def v3(user: bytes, engine_id: str, pdu_type: int, flags: int = 0, n_varbinds: int = 500) -> bytes:
    return v3_message(user, engine_id, pdu_type, flags, n_varbinds)


# Varbinds of indefinite length: the fast decoder declines it, pysnmp would take it.
UNUSUAL_TRAP = tlv(
    0x30,
    integer(1) + tlv(0x04, b"wrong") + tlv(ber.TRAP_V2, integer(1) + integer(0) * 2 + b"\x30\x80\x00\x00"),
)


@pytest.fixture
def decoded(monkeypatch):
    """Every (substrate, recursive) pyasn1's BER decoder is given: pysnmp decodes only through it."""
    from pyasn1.codec.ber import decoder

    seen: list[tuple[bytes, bool]] = []
    real = decoder.decode

    def counting(substrate, *args, **kw):
        seen.append((bytes(substrate), kw.get("recursiveFlag", True)))
        return real(substrate, *args, **kw)

    monkeypatch.setattr(decoder, "decode", counting)
    return seen


async def screened(**extra):
    emit = GatedEmit()
    emit.gate.set()
    r = await started(emit, communities=["public"], users=USERS, engine_id=OWN_ENGINE_ID, **extra)
    transport, answers = await client(r.address[1])
    return r, emit, transport, answers


async def counted(reason: str, before: float) -> None:
    async with asyncio.timeout(5):
        while DROPPED.labels(reason)._value.get() == before:
            await asyncio.sleep(0.001)  # the socket is real: wait for the kernel to deliver


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (v2c(b"wrong", GET), "bad_community"),
        (UNUSUAL_TRAP, "bad_community"),
        (v2c(b"public", GET), "unsupported_pdu"),
        (v2c(b"public", SET), "unsupported_pdu"),
        (v2c(b"public", ber.GET_BULK), "unsupported_pdu"),
        (v3(b"stranger", SENDER_ENGINE_ID, ber.TRAP_V2), "unknown_user"),
        (v3(b"stranger", OWN_ENGINE_ID, ber.INFORM), "unknown_user"),
        (v3(b"noc", "80000000010203ff", ber.TRAP_V2, flags=AUTH), "unknown_engine_id"),
        (v3(b"stranger", "0102", ber.TRAP_V2), "unknown_engine_id"),
        (v3(b"open", SENDER_ENGINE_ID, GET), "unsupported_pdu"),
        (v3(b"", SENDER_ENGINE_ID, ber.TRAP_V2), "unknown_user"),
    ],
    ids=[
        "v2c-get-wrong-community",
        "v2c-unusual-trap-wrong-community",
        "v2c-get",
        "v2c-set",
        "v2c-getbulk",
        "v3-trap-unknown-user",
        "v3-inform-unknown-user",
        "v3-known-user-unlisted-engine-id",
        "v3-malformed-engine-id",
        "v3-get-known-user",
        "v3-trap-no-user",
    ],
)
async def test_refused_by_its_header_without_decoding_it(decoded, data, reason):
    r, _emit, transport, _answers = await screened()
    sent = record_sends(r)
    assert len(data) <= 8192
    before = DROPPED.labels(reason)._value.get()
    decoded.clear()
    transport.sendto(data)
    await counted(reason, before)
    assert decoded == [] and sent == [] and r._events == []
    transport.close()
    await r.stop()


@pytest.mark.parametrize("flags", [0, AUTH, REPORTABLE])
@pytest.mark.parametrize("engine_id", [SENDER_ENGINE_ID, OWN_ENGINE_ID])
async def test_a_v3_notification_without_a_user_name_is_never_an_event(flags, engine_id):
    """An empty user name is for engine id discovery (RFC 3414 4), under no engine id; with one it is
    no configured user, whatever level the message claims: refused, never stored."""
    r, emit, transport, _answers = await screened()
    before = DROPPED.labels("unknown_user")._value.get()
    transport.sendto(
        v3(b"", engine_id, ber.INFORM if flags & REPORTABLE else ber.TRAP_V2, flags, n_varbinds=3)
    )
    await counted("unknown_user", before)
    assert r._events == [] and emit.events == []
    transport.close()
    await r.stop()


async def test_unknown_user_of_a_reportable_message_gets_its_report_without_decoding_it(decoded):
    """RFC 3414 3.2 step 4: an inform from an unknown user is answered with a usmStatsUnknownUserNames
    Report, which the header alone makes; the message's PDU is never decoded."""
    r, _emit, transport, answers = await screened()
    data = v3(b"stranger", OWN_ENGINE_ID, ber.INFORM, flags=REPORTABLE)
    before = DROPPED.labels("unknown_user")._value.get()
    decoded.clear()
    transport.sendto(data)
    report = await asyncio.wait_for(answers.get(), 5)
    assert USM_UNKNOWN_USER_NAMES in report and b"stranger" in report
    await counted("unknown_user", before)
    assert data not in [d for d, _ in decoded]
    transport.close()
    await r.stop()


async def test_engine_id_discovery_is_answered_without_decoding_the_probe(decoded):
    """An inform sender's discovery probe (no user, no engine id) gets the Report naming our engine id,
    and is not counted as a drop; a probe carrying 8 KB of varbinds costs no more than an empty one."""
    r, _emit, transport, answers = await screened()
    data = v3(b"", "", GET, flags=REPORTABLE)
    totals = sum(s.value for m in DROPPED.collect() for s in m.samples if s.name.endswith("_total"))
    decoded.clear()
    transport.sendto(data)
    report = await asyncio.wait_for(answers.get(), 5)
    assert USM_UNKNOWN_ENGINE_IDS in report and bytes.fromhex(OWN_ENGINE_ID) in report
    assert data not in [d for d, _ in decoded]
    assert sum(s.value for m in DROPPED.collect() for s in m.samples if s.name.endswith("_total")) == totals
    transport.close()
    await r.stop()


async def test_a_known_users_message_is_decoded_once(decoded):
    r, emit, transport, _answers = await screened()
    # A wrong digest: refused by USM after one decode, and its header is not decoded again for the log.
    data = v3(b"noc", SENDER_ENGINE_ID, ber.TRAP_V2, flags=AUTH)
    before = DROPPED.labels("auth_failed")._value.get()
    decoded.clear()
    transport.sendto(data)
    await counted("auth_failed", before)
    assert [d for d, recursive in decoded if recursive and d == data] == [data]
    # A trap that passes is decoded by pysnmp and becomes an event.
    decoded.clear()
    data = v3(b"open", SENDER_ENGINE_ID, ber.TRAP_V2, n_varbinds=3)
    transport.sendto(data)
    async with asyncio.timeout(5):
        while not emit.events:
            await asyncio.sleep(0.001)
    assert [d for d, recursive in decoded if recursive and d == data] == [data]
    transport.close()
    await r.stop()


def _indefinite_trap(community: bytes) -> bytes:
    """A v2c trap whose varbind list has an indefinite length: the fast decoder declines it, so it
    takes the header screen and pysnmp's path."""
    varbinds = tlv(0x30, tlv(0x06, ber.oid_bytes("1.3.6.1.2.1.1.3.0")) + tlv(0x43, b"\x05")) + tlv(
        0x30,
        tlv(0x06, ber.oid_bytes("1.3.6.1.6.3.1.1.4.1.0")) + tlv(0x06, ber.oid_bytes("1.3.6.1.6.3.1.1.5.3")),
    )
    pdu = tlv(ber.TRAP_V2, integer(7) + integer(0) + integer(0) + b"\x30\x80" + varbinds + b"\x00\x00")
    return tlv(0x30, integer(1) + tlv(0x04, community) + pdu)


async def test_a_non_ascii_community_is_read_as_utf8_on_both_paths():
    """The fast decoder, the header screen and pysnmp agree: the configured text's UTF-8 bytes."""
    emit = GatedEmit()
    emit.gate.set()
    r = await started(emit, communities=["café"])
    transport, _ = await client(r.address[1])
    try:
        for data in (v2c_message("café".encode(), ber.TRAP_V2), _indefinite_trap("café".encode())):
            n = len(emit.events)
            transport.sendto(data)
            async with asyncio.timeout(5):
                while len(emit.events) == n:
                    await asyncio.sleep(0.001)
        before = DROPPED.labels("bad_community")._value.get()
        transport.sendto(_indefinite_trap("café".encode("latin-1")))  # other bytes: another community
        await counted("bad_community", before)
    finally:
        transport.close()
        await r.stop()
