"""Decoded notifications -> Events: RFC 3584 v1 mapping, trap OID -> type, varbinds -> attributes.

Fed by the receiver with fast-path TrapMessages or slow-path (pysnmp) Notifications; its Events go
to ctx.emit. Severity is left to the rules (info here); host is the agent address, optionally named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.snmp.ber import NO_VALUE, TrapMessage, Unusual, oid_bytes
from collectors.snmp.oids import Resolver
from correlator.event import Event, new_id

SOURCE = "snmp"
_SYS_UPTIME = oid_bytes("1.3.6.1.2.1.1.3.0")
_TRAP_OID = oid_bytes("1.3.6.1.6.3.1.1.4.1.0")
_TRAP_ADDRESS = oid_bytes("1.3.6.1.6.3.18.1.3.0")
_TRAP_COMMUNITY = oid_bytes("1.3.6.1.6.3.18.1.4.0")
_GENERIC_PREFIX = oid_bytes("1.3.6.1.6.3.1.1.5")
_HIDDEN = {_TRAP_OID, _TRAP_COMMUNITY}  # the type carries the first; the second is a credential


def v1_trap_oid(enterprise: bytes, generic: int, specific: int) -> bytes:
    """RFC 3584 3.1: generic traps 0-5 -> snmpTraps.(g+1); enterpriseSpecific -> enterprise.0.specific.

    Both are signed INTEGERs on the wire: a generic-trap outside RFC 1157's 0..6, or a specific-trap
    that cannot be a sub-identifier (negative), is a malformed trap."""
    if not 0 <= generic <= 6:
        raise Unusual(f"v1 generic-trap {generic} is not 0..6")
    if specific < 0:
        raise Unusual(f"v1 specific-trap {specific} is negative")
    if generic <= 5:
        return _GENERIC_PREFIX + bytes((generic + 1,))
    return enterprise + b"\x00" + oid_bytes(f"1.3.{specific}")[1:]


class Mapper:
    def __init__(self, resolver: Resolver, hosts: Mapping[str, str]) -> None:
        self.resolver = resolver
        self.hosts = hosts

    def from_fast(self, msg: TrapMessage, sender: str, now: float) -> Event:
        if msg.version == 0:
            assert msg.enterprise is not None
            trap_oid = v1_trap_oid(msg.enterprise, msg.generic, msg.specific)
            agent = msg.agent_addr if msg.agent_addr and msg.agent_addr != "0.0.0.0" else sender
            attrs: dict[str, Any] = {
                "sysUpTime": msg.timestamp,
                "snmpTrapEnterprise": self.resolver.lookup(msg.enterprise)[0],
            }
            self._add_varbinds(attrs, msg.varbinds)
            return self._event(trap_oid, agent, sender, "v1", attrs, now)
        return self._from_varbinds(msg.varbinds, sender, "v2c", now)

    def from_varbinds(
        self, varbinds: list[tuple[bytes, Any]], sender: str, version: str, now: float
    ) -> Event:
        return self._from_varbinds(varbinds, sender, version, now)

    def _from_varbinds(
        self, varbinds: list[tuple[bytes, Any]], sender: str, version: str, now: float
    ) -> Event:
        trap_oid = b""
        agent = sender
        for raw, value in varbinds:
            if raw == _TRAP_OID and isinstance(value, tuple):
                trap_oid = value[1]
            elif raw == _TRAP_ADDRESS and isinstance(value, str) and value != "0.0.0.0":
                agent = value  # set by proxies and by v1 -> v2 conversion: the real origin
        attrs: dict[str, Any] = {}
        self._add_varbinds(attrs, varbinds)
        return self._event(trap_oid, agent, sender, version, attrs, now)

    def _add_varbinds(self, attrs: dict[str, Any], varbinds: list[tuple[bytes, Any]]) -> None:
        lookup = self.resolver.lookup
        enums = self.resolver.enums
        for raw, value in varbinds:
            if raw in _HIDDEN:
                continue
            name, short, instance = lookup(raw)
            key = short if short not in attrs else f"{short}.{instance}"
            labels = enums.get(name)
            if labels is not None and type(value) is int and value in labels:
                # ifOperStatus: down for people and rules, ifOperStatus_value: 2 for what needs the number.
                attrs[key] = labels[value]
                attrs[f"{key}_value"] = value
            else:
                attrs[key] = self._plain(value)

    def _plain(self, value: Any) -> Any:
        if isinstance(value, bytes):
            return text(value)
        if isinstance(value, tuple):  # ("oid", raw)
            return self.resolver.lookup(value[1])[0]
        return None if value is NO_VALUE else value

    def _event(
        self, trap_oid: bytes, agent: str, sender: str, version: str, attrs: dict[str, Any], now: float
    ) -> Event:
        type_ = self.resolver.lookup(trap_oid)[0] if trap_oid else "snmp.unknownTrap"
        host = self.hosts.get(agent, agent)
        attrs["snmp_version"] = version
        attrs["agent_address"] = agent
        if sender != agent:
            attrs["sender_address"] = sender
        return Event(
            new_id(),
            now,
            now,
            SOURCE,
            host,
            type_,
            resource=_resource(attrs),
            message=f"{type_} from {host}",
            attributes=attrs,
        )


def text(value: bytes) -> str:
    """OCTET STRINGs: printable UTF-8 as text, anything else (MAC addresses, binary) as hex pairs.

    Trailing NUL bytes are dropped first: many agents send C strings with their terminator
    ("Gi0/1\\0"), which are text. Any other NUL makes the value binary, so no text field ever
    carries U+0000 (the door would refuse the event)."""
    body = value.rstrip(b"\x00")
    try:
        s = body.decode()
    except UnicodeDecodeError:
        return value.hex(":")
    if len(body) < len(value):  # terminated: text only if the rest is plainly printable
        return s if s and s.isprintable() else value.hex(":")
    if s.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in s):
        return s
    return value.hex(":")


def _resource(attrs: dict[str, Any]) -> str:
    for key in ("ifName", "ifDescr"):
        v = attrs.get(key)
        if isinstance(v, str) and v:
            return v[:256]
    idx = attrs.get("ifIndex")
    return f"ifIndex.{idx}" if isinstance(idx, int) else ""
