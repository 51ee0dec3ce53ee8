"""The fast-path BER decoder: agrees with pysnmp on real messages, declines the unusual, never crashes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pysnmp.proto import api

from collectors.snmp import ber

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"


def pysnmp_v2c(pdu_cls_name: str = "SNMPv2TrapPDU") -> bytes:
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = getattr(p, pdu_cls_name)()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, 4242)
    p.apiPDU.set_varbinds(
        pdu,
        [
            ((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(12345)),
            ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), p.ObjectIdentifier(LINK_DOWN)),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), p.Integer(7)),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 7), p.OctetString(b"Gi0/7")),
            ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 7), p.Counter64(2**64 - 1)),
            ((1, 3, 6, 1, 6, 3, 18, 1, 3, 0), p.IpAddress("10.0.0.9")),
        ],
    )
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "public")
    p.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def test_decodes_a_pysnmp_encoded_v2c_trap():
    m = ber.decode(pysnmp_v2c())
    assert (m.version, m.community, m.pdu_type, m.request_id) == (1, b"public", ber.TRAP_V2, 4242)
    values = [v for _, v in m.varbinds]
    assert values == [12345, ("oid", ber.oid_bytes(LINK_DOWN)), 7, b"Gi0/7", 2**64 - 1, "10.0.0.9"]
    assert ber.oid_str(m.varbinds[2][0]) == "1.3.6.1.2.1.2.2.1.1.7"


def test_inform_response_echoes_request_id_and_varbinds():
    raw = pysnmp_v2c("InformRequestPDU")
    m = ber.decode(raw)
    assert m.pdu_type == ber.INFORM
    rsp = ber.encode_response(m, raw)
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    from pyasn1.codec.ber import decoder

    decoded, rest = decoder.decode(rsp, asn1Spec=p.Message())
    assert not rest
    pdu = p.apiMessage.get_pdu(decoded)
    assert pdu.tagSet == p.ResponsePDU.tagSet
    assert int(p.apiPDU.get_request_id(pdu)) == 4242
    assert len(p.apiPDU.get_varbinds(pdu)) == 6


def test_encode_notification_round_trips():
    raw = ber.encode_notification(
        1, b"c", ber.TRAP_V2, 7, [("1.3.6.1.6.3.1.1.4.1.0", ("oid", LINK_DOWN)), ("1.3.6.1.2.1.2.2.1.1.1", 1)]
    )
    m = ber.decode(raw)
    assert m.varbinds[1] == (ber.oid_bytes("1.3.6.1.2.1.2.2.1.1.1"), 1)


@pytest.mark.parametrize("oid", ["1.3.6.1", "2.999.3", "1.3.6.1.4.1.2636.3.1.2.1.268435455", "0.0"])
def test_oid_round_trip(oid):
    assert ber.oid_str(ber.oid_bytes(oid)) == oid


@pytest.mark.timeout(10)
@pytest.mark.parametrize("oid", ["1.3.-1", "1.3.6.1.4.1.9.0.-300", "-1.50.3", "1.-3"])
def test_oid_bytes_refuses_negative_sub_identifiers(oid):
    # A sub-identifier is unsigned: shifting a negative one right never reaches 0.
    with pytest.raises(ValueError, match="negative"):
        ber.oid_bytes(oid)


@pytest.mark.timeout(60)
@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=8))
def test_fuzz_oid_bytes_round_trips_or_refuses(parts):
    dotted = ".".join(map(str, [1, 3, *parts]))
    try:
        raw = ber.oid_bytes(dotted)
    except ValueError:
        assert min(parts) < 0
        return
    assert ber.oid_str(raw) == dotted


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x80\x02\x01\x01\x00\x00",  # indefinite length
        b"\x30\x03\x02\x01\x03",  # version 3: for pysnmp
        pysnmp_v2c()[:-1],  # truncated
        pysnmp_v2c() + b"\x00",  # trailing byte
    ],
)
def test_unusual_input_is_declined(data):
    with pytest.raises(ber.Unusual):
        ber.decode(data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_ever_raise_unusual(data):
    try:
        m = ber.decode(data)
    except ber.Unusual:
        return
    for raw, _ in m.varbinds:
        with contextlib.suppress(ber.Unusual):
            ber.oid_str(raw)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_fuzz_mutated_real_messages(data):
    raw = bytearray(pysnmp_v2c(data.draw(st.sampled_from(["SNMPv2TrapPDU", "InformRequestPDU"]))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        m = ber.decode(bytes(raw))
    except ber.Unusual:
        return
    if m.pdu_type == ber.INFORM:
        assert ber.encode_response(m, bytes(raw))  # must not raise either


def test_get_bulk_request_is_what_pysnmp_decodes():
    from pyasn1.codec.ber import decoder

    raw = ber.encode_get_bulk(b"public", 99, 1, 16, ["1.3.6.1.2.1.1.3", "1.3.6.1.2.1.2.2.1.2"])
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    msg, rest = decoder.decode(raw, asn1Spec=p.Message())
    pdu = p.apiMessage.get_pdu(msg)
    assert not rest and pdu.tagSet == p.GetBulkRequestPDU.tagSet
    assert (int(p.apiBulkPDU.get_non_repeaters(pdu)), int(p.apiBulkPDU.get_max_repetitions(pdu))) == (1, 16)
    assert [str(n) for n, _ in p.apiPDU.get_varbinds(pdu)] == ["1.3.6.1.2.1.1.3", "1.3.6.1.2.1.2.2.1.2"]


def test_response_decoding_with_end_of_mib_view():
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = p.ResponsePDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, 5)
    p.apiPDU.set_varbinds(
        pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(77)), ((1, 3, 6, 1, 9), p.EndOfMibView())]
    )
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "public")
    p.apiMessage.set_pdu(msg, pdu)
    rid, status, vbs = ber.decode_response(encoder.encode(msg))
    assert (rid, status) == (5, 0)
    assert [v for _, v in vbs] == [77, ber.NO_VALUE]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_response_decoder(data):
    with contextlib.suppress(ber.Unusual):
        ber.decode_response(data)


SENDER = bytes.fromhex("8000000001020304")


def pysnmp_v3(pdu_cls_name: str = "InformRequestPDU", flags: int = 0x04, encrypted: bool = False) -> bytes:
    """An SNMPv3 message as pysnmp encodes it: user 'noc', the scoped PDU in clear unless encrypted."""
    from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = getattr(p, pdu_cls_name)()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, 4242)
    p.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(12345))] * 3)
    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = SENDER
    usm["msgAuthoritativeEngineBoots"] = 1
    usm["msgAuthoritativeEngineTime"] = 100
    usm["msgUserName"] = b"noc"
    usm["msgAuthenticationParameters"] = b""
    usm["msgPrivacyParameters"] = b""
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    header = msg["msgGlobalData"]
    header["msgID"], header["msgMaxSize"], header["msgFlags"] = 77, 65507, bytes((flags,))
    header["msgSecurityModel"] = 3
    msg["msgSecurityParameters"] = encoder.encode(usm)
    if encrypted:
        msg["msgData"]["encryptedPDU"] = b"\x01" * 40
    else:
        scoped = ScopedPDU()
        scoped["contextEngineId"] = SENDER
        scoped["contextName"] = b""
        scoped["data"].setComponentByType(pdu.tagSet, pdu)
        msg["msgData"]["plaintext"] = scoped
    return encoder.encode(msg)


def test_header_of_v1_v2c_and_v3_messages():
    h = ber.read_header(pysnmp_v2c("GetRequestPDU"))
    assert (h.version, h.community, h.pdu_type) == (1, b"public", 0xA0)
    h = ber.read_header(pysnmp_v3())
    assert (h.version, h.flags, h.security_model, h.engine_id, h.user) == (3, 0x04, 3, SENDER, b"noc")
    assert h.pdu_type == ber.INFORM
    assert ber.read_header(pysnmp_v3(flags=0x07, encrypted=True)).pdu_type is None
    assert ber.read_header(b"\x30\x03\x02\x01\x02").version == 2  # judged by its version alone


@pytest.mark.parametrize("encrypted", [False, True])
def test_without_varbinds_keeps_the_header_and_the_request_id(encrypted):
    from pyasn1.codec.ber import decoder
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

    raw = pysnmp_v3(flags=0x07 if encrypted else 0x04, encrypted=encrypted)
    stub, rest = decoder.decode(ber.without_varbinds(raw), asn1Spec=SNMPv3Message())
    msg, _ = decoder.decode(raw, asn1Spec=SNMPv3Message())
    assert not rest
    for part in ("msgVersion", "msgGlobalData", "msgSecurityParameters"):
        assert stub[part] == msg[part]
    if encrypted:
        assert bytes(stub["msgData"]["encryptedPDU"]) == b""
        return
    scoped = stub["msgData"]["plaintext"]
    assert bytes(scoped["contextEngineId"]) == SENDER
    pdu = scoped["data"].getComponent()
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    assert pdu.tagSet == p.InformRequestPDU.tagSet and int(p.apiPDU.get_request_id(pdu)) == 4242
    assert p.apiPDU.get_varbinds(pdu) == []


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_fuzz_headers_of_mutated_messages_only_ever_raise_unusual(data):
    raw = bytearray(
        data.draw(st.sampled_from([pysnmp_v3(), pysnmp_v3(flags=7, encrypted=True), pysnmp_v2c()]))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ber.Unusual):
        if ber.read_header(bytes(raw)).version == 3:
            ber.without_varbinds(bytes(raw))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_header_of_random_bytes(data):
    with contextlib.suppress(ber.Unusual):
        if ber.read_header(data).version == 3:
            ber.without_varbinds(data)
