"""The slow path: pysnmp's engine for SNMPv3 (USM) and any v1/v2c message the fast decoder declines.

The receiver owns the UDP socket and hands datagrams here synchronously; pysnmp answers through a
transport whose only job is to write to that socket. Our own PDU handler replaces pysnmp's
NotificationReceiver so an inform's Response is sent only once the event is durable (see respond).

pysnmp decodes a whole message before it looks at the community or the user, tens of milliseconds
for 8 KB of varbinds, so each datagram's header is read first (ber.read_header) and what it already
condemns is refused without pysnmp (see _screen).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.proto import error as proto_error
from pysnmp.proto import rfc3411
from pysnmp.proto.api import v1, v2c
from pysnmp.proto.proxy import rfc2576
from pysnmp.proto.rfc1902 import OctetString

from collectors.snmp import ber
from collectors.snmp.ber import oid_bytes
from collectors.snmp.settings import SECURITY_LEVELS, User

log = logging.getLogger(__name__)

AUTH = {
    "SHA": config.USM_AUTH_HMAC96_SHA,
    "SHA-224": config.USM_AUTH_HMAC128_SHA224,
    "SHA-256": config.USM_AUTH_HMAC192_SHA256,
    "SHA-384": config.USM_AUTH_HMAC256_SHA384,
    "SHA-512": config.USM_AUTH_HMAC384_SHA512,
}
PRIV = {
    "AES": config.USM_PRIV_CFB128_AES,
    "AES-192": config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES-256": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}
# Engine counters that tell why a message never reached the PDU handler -> our drop reason.
_COUNTERS = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs", "malformed"),
    ("__SNMPv2-MIB", "snmpInBadVersions", "bad_version"),
    ("__SNMPv2-MIB", "snmpInBadCommunityNames", "bad_community"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests", "auth_failed"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames", "unknown_user"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors", "decrypt_failed"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows", "not_in_time_window"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels", "unsupported_security_level"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs", "unknown_engine_id"),
    ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels", "unknown_security_model"),
    ("__SNMP-MPD-MIB", "snmpInvalidMsgs", "malformed"),
    ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers", "unsupported_pdu"),
)


@dataclass(slots=True)
class Notification:
    """What the slow path hands the receiver: v2-form varbinds as (raw OID, plain value)."""

    version: str  # "v1" | "v2c" | "v3"
    principal: str  # community index or v3 user name
    varbinds: list[tuple[bytes, Any]]
    confirmed: bool


Deliver = Callable[[Notification, Callable[[], None] | None], None]
"""deliver(notification, respond): respond() sends the inform's Response; None for traps."""

_PDU_NAMES = {
    0xA0: "GetRequest",
    0xA1: "GetNextRequest",
    ber.RESPONSE: "Response",
    0xA3: "SetRequest",
    ber.GET_BULK: "GetBulkRequest",
    0xA8: "Report",
}


class _Refused(NamedTuple):
    reason: str
    detail: str
    report: bool = False  # pysnmp answers it with an RFC 3414 Report, made from its header alone


class SlowPath:
    def __init__(self, communities: list[str], users: list[User], engine_id: str | None) -> None:
        """Must run inside the event loop (pysnmp binds its dispatcher to the running loop)."""
        eid = OctetString(hexValue=engine_id) if engine_id else None
        self.engine = engine.SnmpEngine(snmpEngineID=eid)
        self._own_engine_id = bytes(self.engine.snmpEngineID.asOctets())
        self._communities = {c.encode() for c in communities}
        self._user_names = {OctetString(u.name).asOctets(): u.name for u in users}  # as pysnmp stores them
        for i, community in enumerate(communities):
            # As UTF-8 bytes, as the fast path and the header screen read it: given as text,
            # pysnmp would store it as ISO-8859-1 and refuse a non-ASCII community they accept.
            config.add_v1_system(self.engine, f"c{i}", community.encode())
        # USM accepts any level up to what a user's keys allow (a keyless noAuthNoPriv message under a
        # SHA+AES user's name passes), so the minimum is checked here, before delivery.
        self._min_level = {u.name: SECURITY_LEVELS.index(u.min_security_level) + 1 for u in users}
        # Traps are authenticated under (sender's engine id, user): what each user accepts, so a
        # trap from an engine id nobody listed is reported as that rather than an unknown user.
        self._engine_ids = {u.name: {e.lower() for e in u.engine_ids} for u in users}
        self._max_level = {u.name: SECURITY_LEVELS.index(u.security_level) + 1 for u in users}
        self._refused: str | None = None
        for u in users:
            kw = _user_args(u)
            config.add_v3_user(self.engine, u.name, **kw)  # informs: our own engine id
            for sender in u.engine_ids:  # traps: the sending engine's id
                config.add_v3_user(self.engine, u.name, securityEngineId=OctetString(hexValue=sender), **kw)
        self._transport = udp.UdpAsyncioTransport()
        config.add_transport(self.engine, udp.DOMAIN_NAME, self._transport)
        self.engine.message_dispatcher.register_context_engine_id(
            b"",
            (v1.TrapPDU.tagSet, v2c.SNMPv2TrapPDU.tagSet, v2c.InformRequestPDU.tagSet),
            self._process_pdu,
        )
        self._counters = self._find_counters()
        self._deliver: Deliver | None = None
        self._community = ""

        def remember_community(_e: Any, _p: Any, variables: dict[str, Any], _c: Any) -> None:
            self._community = str(variables.get("communityName", ""))

        self.engine.observer.register_observer(remember_community, "rfc2576.processIncomingMsg")

    def attach(self, sock_transport: Any) -> None:
        """Let pysnmp's answers (reports, inform responses) go out of the receiver's socket."""
        self._transport.transport = sock_transport

    def close(self) -> None:
        self._transport.transport = None
        self.engine.close_dispatcher()

    def feed(self, data: bytes, addr: tuple[str, int], deliver: Deliver) -> tuple[str, str] | None:
        """Process one datagram now; None if it was delivered (or needs no event), else (reason, detail)."""
        try:
            head = ber.read_header(data)
        except ber.Unusual as e:
            return "malformed", str(e)
        refused = self._screen(head)
        if refused is None:
            return self._process(data, addr, head, deliver)
        if refused.report:
            # pysnmp makes the Report (our engine id, its counters, the security state) from the header:
            # it is handed the message without its varbinds, which it would otherwise decode in full.
            try:
                stub = ber.without_varbinds(data)
            except ber.Unusual as e:
                return "malformed", str(e)
            self._process(stub, addr, head, lambda _n, _r: None)
        if refused.reason == "unknown_engine_id" and not head.user:
            return None  # an inform sender learning our engine id: normal, answered with a Report
        return refused.reason, refused.detail

    def _screen(self, head: ber.Header) -> _Refused | None:
        """The refusal pysnmp would come to, when the header alone decides it; None: let pysnmp judge.
        The checks follow pysnmp's order (RFC 3412 7.2, RFC 3414 3.2), so each message keeps its reason
        and an unknown user or engine id still gets the Report pysnmp would send."""
        v = {0: "v1", 1: "v2c", 3: "v3"}.get(head.version)
        if v is None:
            return _Refused("bad_version", f"SNMP message version {head.version}")
        if head.pdu_type is not None and head.pdu_type not in (ber.V1_PDUS if v == "v1" else ber.V2_PDUS):
            return _Refused("malformed", f"PDU type {head.pdu_type:#x} in a {v} message")
        if v != "v3":
            if head.community not in self._communities:
                return _Refused("bad_community", f"community not accepted ({v})")
            return _unsupported(head.pdu_type, v)
        if head.security_model != 3:
            if head.security_model in (1, 2):  # the community models cannot read a v3 message
                return _Refused("malformed", f"v3 message under security model {head.security_model}")
            return _Refused("unknown_security_model", f"security model {head.security_model}")
        if head.flags & 3 == 2:
            return _Refused("malformed", "v3 message flagged private but not authenticated")
        eid = head.engine_id
        if eid != self._own_engine_id and not 4 < len(eid) < 33:
            # RFC 3414 3.2 step 3b: none (discovery) or not an engine id; a request in clear is answered
            what = f"engine id {eid.hex()}, not 5 to 32 octets" if eid else "no engine id"
            return _Refused("unknown_engine_id", f"v3 message with {what}", head.pdu_type in ber.CONFIRMED)
        if not head.user:
            # An empty user name is for discovery (RFC 3414 4), under no engine id, answered above.
            # pysnmp would take it as a user without keys at any level, and deliver what it carries.
            return _Refused("unknown_user", "v3 message without a user name")
        reportable = bool(head.flags & 4)
        name = self._user_names.get(head.user)
        if name is None:
            sent = head.user[:64].decode("utf-8", "replace")
            return _Refused("unknown_user", f"v3 user {sent!r} is not configured", reportable)
        if eid != self._own_engine_id and eid.hex() not in self._engine_ids[name]:
            # USM only says "unknown user name"; the operator needs to hear which engine id to add.
            return _Refused(
                "unknown_engine_id",
                f"v3 message from engine id {eid.hex()} for user '{name}': that engine id is not"
                " configured (traps are authenticated with the sender's engine id; add it to the"
                " user's engine_ids)",
                reportable,
            )
        return _unsupported(head.pdu_type, v)

    def _process(
        self, data: bytes, addr: tuple[str, int], head: ber.Header, deliver: Deliver
    ) -> tuple[str, str] | None:
        """Hand the datagram to pysnmp; the reason of a refusal is read from the engine's counters."""
        before = [int(c.syntax) for c in self._counters]
        delivered = [False]
        self._refused = None

        def mark(n: Notification, respond: Callable[[], None] | None) -> None:
            delivered[0] = True
            deliver(n, respond)

        self._deliver = mark
        try:
            self.engine.transport_dispatcher._callback_function(
                self._transport, udp.UdpTransportAddress(addr), data
            )
        except Exception as e:  # pysnmp raises several unrelated types on hostile input
            log.debug("pysnmp rejected a datagram from %s: %r", addr[0], e)
            return "malformed", "rejected by the SNMP engine"
        finally:
            self._deliver = None
        if delivered[0]:
            return None
        if self._refused is not None:
            return "unsupported_security_level", self._refused
        for counter, old, (_, _, reason) in zip(self._counters, before, _COUNTERS, strict=True):
            if int(counter.syntax) != old:
                if reason in ("auth_failed", "decrypt_failed"):
                    return self._above_user_level(head) or (reason, "rejected by the SNMP engine")
                return reason, "rejected by the SNMP engine"
        return "undelivered", "rejected by the SNMP engine"

    def _above_user_level(self, head: ber.Header) -> tuple[str, str] | None:
        """RFC 3414 3.2 step 5, which pysnmp skips: a level above what the user's keys allow is
        `unsupported_security_level`, not a failed digest or decryption."""
        user = self._user_names.get(head.user)
        level = 1 + (head.flags & 1) + (head.flags >> 1 & 1)
        if user is None or level <= self._max_level[user]:
            return None
        has = SECURITY_LEVELS[self._max_level[user] - 1]
        return "unsupported_security_level", (
            f"user '{user}' sent {SECURITY_LEVELS[level - 1]}, is configured for {has}"
        )

    def _find_counters(self) -> list[Any]:
        builder = self.engine.get_mib_builder()
        return [builder.import_symbols(mod, name)[0] for mod, name, _ in _COUNTERS]

    def _process_pdu(
        self,
        snmp_engine: Any,
        mp_model: Any,
        sec_model: Any,
        sec_name: Any,
        sec_level: Any,
        ctx_engine_id: Any,
        ctx_name: Any,
        pdu_version: Any,
        pdu: Any,
        max_size: Any,
        state_ref: Any,
    ) -> None:
        if int(mp_model) == 3 and int(sec_level) < self._min_level.get(str(sec_name), 1):
            # Refused before anything is answered: an inform gets no Response, so it is not acknowledged.
            # The detail names the user and the levels, never a key.
            wanted = SECURITY_LEVELS[self._min_level[str(sec_name)] - 1]
            self._refused = f"user '{sec_name}' sent {SECURITY_LEVELS[int(sec_level) - 1]}, needs {wanted}"
            return
        v2pdu = rfc2576.v1_to_v2(pdu, snmpTrapCommunity=self._community) if mp_model == 0 else pdu
        varbinds = v2c.apiPDU.get_varbinds(v2pdu)
        confirmed = pdu.tagSet in rfc3411.CONFIRMED_CLASS_PDUS
        version = {0: "v1", 1: "v2c"}.get(int(mp_model), "v3")
        note = Notification(version, str(sec_name), [plain(n, v) for n, v in varbinds], confirmed)
        respond: Callable[[], None] | None = None
        if confirmed:
            rsp = v2c.apiPDU.get_response(v2pdu)
            v2c.apiPDU.set_error_status(rsp, 0)
            v2c.apiPDU.set_error_index(rsp, 0)
            v2c.apiPDU.set_varbinds(rsp, varbinds)
            args = (mp_model, sec_model, sec_name, sec_level, ctx_engine_id, ctx_name, pdu_version)

            def respond() -> None:
                # Called later, once emit() returned: pysnmp keeps the message state by state_ref.
                try:
                    self.engine.message_dispatcher.return_response_pdu(
                        self.engine, *args, rsp, max_size, state_ref, {}
                    )
                except proto_error.StatusInformation as e:
                    log.warning("could not answer an inform: %s", e)

        if self._deliver is not None:
            self._deliver(note, respond)


def plain(name: Any, value: Any) -> tuple[bytes, Any]:
    """pysnmp objects -> the fast path's representation (raw OID bytes, Python value)."""
    raw = oid_bytes(str(name))
    tag = value.tagSet
    if isinstance(value, v2c.ObjectIdentifier):
        return raw, ("oid", oid_bytes(str(value)))
    if tag == v2c.IpAddress.tagSet:
        return raw, ".".join(str(b) for b in value.asOctets())
    if isinstance(value, v2c.OctetString) or tag == v2c.Opaque.tagSet:
        return raw, bytes(value.asOctets())
    if isinstance(value, v2c.Integer | v2c.Counter32 | v2c.Gauge32 | v2c.TimeTicks | v2c.Counter64):
        return raw, int(value)
    try:
        return raw, int(value)
    except (TypeError, ValueError):
        return raw, None  # Null and the v2 exceptions


def _user_args(u: User) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if u.auth_protocol:
        kw["authProtocol"] = AUTH[u.auth_protocol]
        kw["authKey"] = u.auth_key
    if u.priv_protocol:
        kw["privProtocol"] = PRIV[u.priv_protocol]
        kw["privKey"] = u.priv_key
    return kw


def _unsupported(pdu_type: int | None, version: str) -> _Refused | None:
    """A PDU the listener never handles (only traps and informs are registered with the engine)."""
    if pdu_type is None or pdu_type in (ber.TRAP_V1, ber.TRAP_V2, ber.INFORM):
        return None
    return _Refused(
        "unsupported_pdu", f"{_PDU_NAMES[pdu_type]} in a {version} message: only traps and informs are taken"
    )
