"""The slow path: pysnmp's engine for SNMPv3 (USM) and any v1/v2c message the fast decoder declines.

The receiver owns the UDP socket and hands datagrams here synchronously; pysnmp answers through a
transport whose only job is to write to that socket. Our own PDU handler replaces pysnmp's
NotificationReceiver so an inform's Response is sent only once the event is durable (see respond).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.proto import error as proto_error
from pysnmp.proto import rfc3411
from pysnmp.proto.api import v1, v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.proxy import rfc2576
from pysnmp.proto.rfc1902 import OctetString
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

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


class SlowPath:
    def __init__(self, communities: list[str], users: list[User], engine_id: str | None) -> None:
        """Must run inside the event loop (pysnmp binds its dispatcher to the running loop)."""
        eid = OctetString(hexValue=engine_id) if engine_id else None
        self.engine = engine.SnmpEngine(snmpEngineID=eid)
        for i, community in enumerate(communities):
            config.add_v1_system(self.engine, f"c{i}", community)
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
                if reason == "unknown_engine_id" and _is_discovery(data):
                    return None  # an inform sender learning our engine id: normal, answered with a Report
                if reason in ("auth_failed", "decrypt_failed"):
                    return self._above_user_level(data) or (reason, "rejected by the SNMP engine")
                if reason == "unknown_user":
                    return self._unlisted_engine_id(data) or (reason, "rejected by the SNMP engine")
                return reason, "rejected by the SNMP engine"
        return "undelivered", "rejected by the SNMP engine"

    def _above_user_level(self, data: bytes) -> tuple[str, str] | None:
        """RFC 3414 3.2 step 5, which pysnmp skips: a level above what the user's keys allow is
        `unsupported_security_level`, not a failed digest or decryption."""
        sent = _user_and_level(data)
        if sent is None or sent[1] <= self._max_level.get(sent[0], 3):
            return None
        user, level = sent
        has = SECURITY_LEVELS[self._max_level[user] - 1]
        return "unsupported_security_level", (
            f"user '{user}' sent {SECURITY_LEVELS[level - 1]}, is configured for {has}"
        )

    def _unlisted_engine_id(self, data: bytes) -> tuple[str, str] | None:
        """A known user under an engine id not in its `engine_ids`: USM only says "unknown user
        name", the operator needs to hear which engine id to add (ids and names are sent in clear)."""
        header = _v3_header(data)
        if header is None:
            return None
        user, _, engine_id = header
        listed = self._engine_ids.get(user)
        own = bytes(self.engine.snmpEngineID.asOctets()).hex()
        if listed is None or engine_id in listed or engine_id == own:
            return None
        return "unknown_engine_id", (
            f"v3 message from engine id {engine_id or '(empty)'} for user '{user}': that engine id is not"
            f" configured (traps are authenticated with the sender's engine id; add it to the user's engine_ids)"
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


def _is_discovery(data: bytes) -> bool:
    """An SNMPv3 engine-id discovery probe has an empty user name; cheap check without decoding twice."""
    sent = _user_and_level(data)
    return sent is not None and not sent[0]


def _user_and_level(data: bytes) -> tuple[str, int] | None:
    """(user name, RFC 3411 securityLevel 1-3) from an SNMPv3 header; None if it does not decode."""
    header = _v3_header(data)
    return None if header is None else header[:2]


def _v3_header(data: bytes) -> tuple[str, int, str] | None:
    """(user name, securityLevel 1-3, authoritative engine id in hex) from an SNMPv3 header, all
    sent in clear; None if it does not decode."""
    try:
        msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        params, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        flags = bytes(msg["msgGlobalData"]["msgFlags"])[0]
        user = bytes(params["msgUserName"]).decode("utf-8", "replace")
        engine_id = bytes(params["msgAuthoritativeEngineId"]).hex()
        return user, 1 + (flags & 1) + (flags >> 1 & 1), engine_id
    except Exception:
        return None
