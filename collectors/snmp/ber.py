"""Fast path: a small BER decoder for SNMP v1/v2c trap and inform messages, and the inform Response.

The receiver tries this first (pyasn1 through pysnmp manages ~2,000 messages/s, this several times
more); anything it does not recognise raises `Unusual` and goes to pysnmp, which also handles v3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRAP_V1 = 0xA4
INFORM = 0xA6
TRAP_V2 = 0xA7
RESPONSE = 0xA2
NOTIFICATIONS = (TRAP_V1, INFORM, TRAP_V2)

# Application types (RFC 2578) and the v2 exceptions, as the tag byte that introduces them.
_INTEGER, _OCTETS, _NULL, _OID = 0x02, 0x04, 0x05, 0x06
_IPADDR, _COUNTER, _GAUGE, _TICKS, _OPAQUE, _COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
_EXCEPTIONS = (0x80, 0x81, 0x82)  # noSuchObject, noSuchInstance, endOfMibView
_UNSIGNED = (_COUNTER, _GAUGE, _TICKS, _COUNTER64)


class _NoValue:
    """noSuchObject / noSuchInstance / endOfMibView: a walk has left its column."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()
GET_BULK = 0xA5
# The PDU types each message version may carry (RFC 1157, RFC 3416), and those a sender expects
# an answer to.
V1_PDUS = frozenset((0xA0, 0xA1, RESPONSE, 0xA3, TRAP_V1))
V2_PDUS = frozenset((0xA0, 0xA1, RESPONSE, 0xA3, GET_BULK, INFORM, TRAP_V2, 0xA8))
CONFIRMED = frozenset((0xA0, 0xA1, 0xA3, GET_BULK, INFORM))


class Unusual(ValueError):
    """Not a v1/v2c notification this decoder handles (or not valid BER): let pysnmp judge it."""


@dataclass(slots=True)
class TrapMessage:
    """A decoded v1/v2c notification: varbinds are (raw OID bytes, value) in arrival order."""

    version: int  # 0 = v1, 1 = v2c
    community: bytes
    pdu_type: int
    request_id: int
    varbinds: list[tuple[bytes, Any]]
    # v1 Trap-PDU fields (None for v2c)
    enterprise: bytes | None = None
    agent_addr: str | None = None
    generic: int = 0
    specific: int = 0
    timestamp: int = 0


@dataclass(slots=True)
class Header:
    """What any SNMP message says of itself before its varbinds, all of it sent in clear."""

    version: int  # 0 = v1, 1 = v2c, 3 = v3, anything else as sent
    community: bytes = b""  # v1/v2c
    pdu_type: int | None = None  # None for an SNMPv3 scoped PDU that is encrypted
    # SNMPv3: msgGlobalData and, under the USM security model (3), its parameters
    flags: int = 0
    security_model: int = 0
    engine_id: bytes = b""  # msgAuthoritativeEngineID
    user: bytes = b""  # msgUserName


def read_header(data: bytes) -> Header:
    """The header of any SNMP message, read in a few steps whatever the message's size: for v1/v2c the
    community and the PDU type, for v3 msgGlobalData, the USM engine id and user name, and the PDU type
    when the scoped PDU is in clear. The PDU's contents are not read. Raises Unusual if the header is
    not well-formed BER."""
    tag, start, end = _tlv(data, 0, len(data))
    if tag != 0x30:
        raise Unusual("not a SEQUENCE")
    version, pos = _expect_int(data, start, end)
    if version in (0, 1):
        tag, s, pos = _tlv(data, pos, end)
        if tag != _OCTETS:
            raise Unusual("community is not an OCTET STRING")
        return Header(version, community=data[s:pos], pdu_type=_tlv(data, pos, end)[0])
    if version != 3:
        return Header(version)
    tag, s, e = _tlv(data, pos, end)
    if tag != 0x30:
        raise Unusual("msgGlobalData is not a SEQUENCE")
    _msg_id, s = _expect_int(data, s, e)
    _max_size, s = _expect_int(data, s, e)
    tag, fs, s = _tlv(data, s, e)
    if tag != _OCTETS or s - fs != 1:
        raise Unusual("msgFlags is not one octet")
    model, _ = _expect_int(data, s, e)
    head = Header(3, flags=data[fs], security_model=model)
    tag, ps, pos = _tlv(data, e, end)
    if tag != _OCTETS:
        raise Unusual("msgSecurityParameters is not an OCTET STRING")
    if model == 3:
        tag, s, pe = _tlv(data, ps, pos)
        if tag != 0x30:
            raise Unusual("USM security parameters are not a SEQUENCE")
        tag, es, ee = _tlv(data, s, pe)
        _boots, s = _expect_int(data, ee, pe)
        _time, s = _expect_int(data, s, pe)
        utag, us, ue = _tlv(data, s, pe)
        if tag != _OCTETS or utag != _OCTETS:
            raise Unusual("USM engine id or user name is not an OCTET STRING")
        head.engine_id, head.user = data[es:ee], data[us:ue]
    tag, s, e = _tlv(data, pos, end)
    if tag == 0x30:  # a ScopedPDU in clear: contextEngineID, contextName, then the PDU
        for _ in range(2):
            tag, _, s = _tlv(data, s, e)
            if tag != _OCTETS:
                raise Unusual("context engine id or name is not an OCTET STRING")
        head.pdu_type = _tlv(data, s, e)[0]
    elif tag != _OCTETS:
        raise Unusual("msgData is neither a ScopedPDU nor encrypted")
    return head


def without_varbinds(data: bytes) -> bytes:
    """The same SNMPv3 message with an empty variable-bindings list (an encrypted scoped PDU emptied):
    what an engine needs to answer it with a Report, whatever the size of the original."""
    _, start, end = _tlv(data, 0, len(data))
    pos = start
    for _ in range(3):  # msgVersion, msgGlobalData, msgSecurityParameters
        _, _, pos = _tlv(data, pos, end)
    tag, s, e = _tlv(data, pos, end)
    if tag != 0x30:
        return _wrap(0x30, data[start:pos] + _wrap(_OCTETS, b""))
    _, _, p = _tlv(data, s, e)  # contextEngineID
    _, _, p = _tlv(data, p, e)  # contextName
    pdu_type, ps, pe = _tlv(data, p, e)
    q = ps
    for _ in range(3):  # request-id, error-status, error-index
        _, _, q = _tlv(data, q, pe)
    scoped = _wrap(0x30, data[s:p] + _wrap(pdu_type, data[ps:q] + _wrap(0x30, b"")))
    return _wrap(0x30, data[start:pos] + scoped)


def decode(data: bytes) -> TrapMessage:
    """Decode one datagram holding a v1/v2c Trap, SNMPv2-Trap or InformRequest; raise Unusual otherwise."""
    tag, start, end = _tlv(data, 0, len(data))
    if tag != 0x30 or end != len(data):
        raise Unusual("not one SEQUENCE")
    tag, s, e = _tlv(data, start, end)
    if tag != _INTEGER:
        raise Unusual("version is not an INTEGER")
    version = _int(data, s, e)
    if version not in (0, 1):
        raise Unusual(f"version {version}")
    tag, s, pos = _tlv(data, e, end)
    if tag != _OCTETS:
        raise Unusual("community is not an OCTET STRING")
    community = data[s:pos]
    pdu_type, s, e = _tlv(data, pos, end)
    if e != end or pdu_type not in NOTIFICATIONS or (pdu_type == TRAP_V1) != (version == 0):
        raise Unusual(f"PDU type {pdu_type:#x} in version {version}")
    if pdu_type == TRAP_V1:
        return _trap_v1(data, s, e, community)
    rid, s = _expect_int(data, s, e)
    _status, s = _expect_int(data, s, e)
    _index, s = _expect_int(data, s, e)
    return TrapMessage(version, community, pdu_type, rid, _varbinds(data, s, e))


def encode_response(msg: TrapMessage, raw: bytes) -> bytes:
    """The Response-PDU answering an InformRequest: same request-id and varbinds, no error."""
    # Re-use the varbind bytes as received: the answer echoes them (RFC 3416 4.2.7).
    _, start, end = _tlv(raw, 0, len(raw))
    _, _, e = _tlv(raw, start, end)  # version
    _, _, pos = _tlv(raw, e, end)  # community
    _, s, e = _tlv(raw, pos, end)  # PDU
    for _ in range(3):
        _, _, s = _tlv(raw, s, e)
    vbl = raw[s:e]
    pdu = _encode_int(msg.request_id) + _encode_int(0) + _encode_int(0) + vbl
    body = _encode_int(msg.version) + _wrap(_OCTETS, msg.community) + _wrap(RESPONSE, pdu)
    return _wrap(0x30, body)


def decode_response(data: bytes) -> tuple[int, int, list[tuple[bytes, Any]]]:
    """(request-id, error-status, varbinds) of a v2c Response-PDU; raises Unusual for anything else."""
    tag, start, end = _tlv(data, 0, len(data))
    if tag != 0x30 or end != len(data):
        raise Unusual("not one SEQUENCE")
    version, pos = _expect_int(data, start, end)
    if version != 1:
        raise Unusual(f"version {version}")
    tag, _, pos = _tlv(data, pos, end)
    if tag != _OCTETS:
        raise Unusual("community is not an OCTET STRING")
    tag, s, e = _tlv(data, pos, end)
    if tag != RESPONSE or e != end:
        raise Unusual(f"PDU type {tag:#x}")
    rid, s = _expect_int(data, s, e)
    status, s = _expect_int(data, s, e)
    _index, s = _expect_int(data, s, e)
    return rid, status, _varbinds(data, s, e)


def encode_get_bulk(
    community: bytes, request_id: int, non_repeaters: int, max_repetitions: int, oids: list[str]
) -> bytes:
    """A v2c GetBulkRequest for the poller's fast path (NULL values)."""
    vbl = b"".join(_wrap(0x30, _wrap(_OID, oid_bytes(o)) + b"\x05\x00") for o in oids)
    pdu = (
        _encode_int(request_id) + _encode_int(non_repeaters) + _encode_int(max_repetitions) + _wrap(0x30, vbl)
    )
    return _wrap(0x30, _encode_int(1) + _wrap(_OCTETS, community) + _wrap(GET_BULK, pdu))


def oid_str(raw: bytes) -> str:
    """Dotted form of the content octets of an OBJECT IDENTIFIER."""
    if not raw:
        raise Unusual("empty OID")
    parts: list[int] = []
    n = 0
    for i, b in enumerate(raw):
        if n == 0 and b == 0x80:
            raise Unusual("non-minimal OID sub-identifier")
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            if not parts:
                first = min(n // 40, 2)
                parts.extend((first, n - 40 * first))
            else:
                parts.append(n)
            n = 0
        elif i == len(raw) - 1:
            raise Unusual("truncated OID")
    return ".".join(map(str, parts))


def oid_bytes(dotted: str) -> bytes:
    """Content octets of a dotted OID (the inverse of oid_str), used for lookups and tests."""
    nums = [int(p) for p in dotted.strip(".").split(".")]
    if len(nums) < 2:
        raise ValueError(f"OID {dotted!r} needs at least two components")
    if min(nums) < 0:  # sub-identifiers are unsigned; n >>= 7 of a negative one never reaches 0
        raise ValueError(f"OID {dotted!r} has a negative sub-identifier")
    out = bytearray()
    for n in [nums[0] * 40 + nums[1], *nums[2:]]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def _wrap(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(content)) + content


def _encode_int(n: int) -> bytes:
    return _wrap(_INTEGER, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def _trap_v1(data: bytes, s: int, end: int, community: bytes) -> TrapMessage:
    tag, es, ee = _tlv(data, s, end)
    if tag != _OID:
        raise Unusual("v1 enterprise is not an OID")
    tag, as_, ae = _tlv(data, ee, end)
    if tag != _IPADDR or ae - as_ != 4:
        raise Unusual("v1 agent-addr is not an IpAddress")
    generic, pos = _expect_int(data, ae, end)
    specific, pos = _expect_int(data, pos, end)
    tag, ts, te = _tlv(data, pos, end)
    if tag != _TICKS:
        raise Unusual("v1 time-stamp is not TimeTicks")
    stamp = int.from_bytes(data[ts:te], "big")
    agent = ".".join(map(str, data[as_:ae]))
    msg = TrapMessage(0, community, TRAP_V1, 0, _varbinds(data, te, end))
    msg.enterprise, msg.agent_addr, msg.generic, msg.specific, msg.timestamp = (
        data[es:ee],
        agent,
        generic,
        specific,
        stamp,
    )
    return msg


def _varbinds(data: bytes, s: int, end: int) -> list[tuple[bytes, Any]]:
    tag, s, e = _tlv(data, s, end)
    if tag != 0x30 or e != end:
        raise Unusual("variable-bindings is not the last SEQUENCE")
    out: list[tuple[bytes, Any]] = []
    while s < e:
        tag, vs, ve = _tlv(data, s, e)
        if tag != 0x30:
            raise Unusual("varbind is not a SEQUENCE")
        tag, os_, oe = _tlv(data, vs, ve)
        if tag != _OID or oe == os_:
            raise Unusual("varbind name is not an OID")
        vtag, xs, xe = _tlv(data, oe, ve)
        if xe != ve:
            raise Unusual("trailing bytes in varbind")
        out.append((data[os_:oe], _value(vtag, data, xs, xe)))
        s = ve
    return out


def _value(tag: int, data: bytes, s: int, e: int) -> Any:
    if tag == _INTEGER:
        return _int(data, s, e)
    if tag in (_OCTETS, _OPAQUE):
        return data[s:e]
    if tag in _UNSIGNED:
        if e - s > (9 if tag == _COUNTER64 else 5):
            raise Unusual("unsigned value too long")
        return int.from_bytes(data[s:e], "big")
    if tag == _OID:
        return ("oid", data[s:e])
    if tag == _IPADDR:
        if e - s != 4:
            raise Unusual("IpAddress is not 4 octets")
        return ".".join(map(str, data[s:e]))
    if tag == _NULL or tag in _EXCEPTIONS:
        if e != s:
            raise Unusual("NULL with content")
        return None if tag == _NULL else NO_VALUE
    raise Unusual(f"value tag {tag:#x}")


def _expect_int(data: bytes, s: int, end: int) -> tuple[int, int]:
    tag, vs, ve = _tlv(data, s, end)
    if tag != _INTEGER:
        raise Unusual("expected an INTEGER")
    return _int(data, vs, ve), ve


def _int(data: bytes, s: int, e: int) -> int:
    if e == s or e - s > 9:
        raise Unusual("INTEGER of bad length")
    return int.from_bytes(data[s:e], "big", signed=True)


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at pos; single-byte tags, definite lengths."""
    if pos + 2 > end:
        raise Unusual("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Unusual("multi-byte tag")
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise Unusual("indefinite or oversized length")
        n = int.from_bytes(data[pos : pos + k], "big")
        pos += k
    if pos + n > end:
        raise Unusual("length beyond the end")
    return tag, pos, pos + n


def encode_notification(
    version: int, community: bytes, pdu_type: int, request_id: int, varbinds: list[tuple[str, Any]]
) -> bytes:
    """Encode a v2c Trap/Inform (benchmark sender, tests): values int, str, bytes or a tagged tuple."""
    vbl = b""
    for oid, value in varbinds:
        if isinstance(value, tuple):  # ("oid", "1.3.6...") or ("ticks", n)
            kind, v = value
            enc = _wrap(_OID, oid_bytes(v)) if kind == "oid" else _wrap(_TICKS, _unsigned(v))
        elif isinstance(value, int):
            enc = _encode_int(value)
        else:
            enc = _wrap(_OCTETS, value.encode() if isinstance(value, str) else value)
        vbl += _wrap(0x30, _wrap(_OID, oid_bytes(oid)) + enc)
    pdu = _encode_int(request_id) + _encode_int(0) + _encode_int(0) + _wrap(0x30, vbl)
    return _wrap(0x30, _encode_int(version) + _wrap(_OCTETS, community) + _wrap(pdu_type, pdu))


def _unsigned(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
