"""OID -> name resolution: a built-in table of standard objects plus operators' compiled MIBs.

Used by the trap mapping and the poller. pysnmp bundles no IF-MIB and Debian ships no MIB texts,
so the standard notifications and interface/system/host-resources objects are listed here;
`correlator mibs compile` adds vendor MIBs as JSON files in the cache directory (see mibs.py).
Enumerated INTEGER objects (ifOperStatus up(1), down(2), ...) carry their labels from either source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from collectors.snmp.ber import oid_str

log = logging.getLogger(__name__)

_IF = "1.3.6.1.2.1.2.2.1."
_IFX = "1.3.6.1.2.1.31.1.1.1."
_HRS = "1.3.6.1.2.1.25.2.3.1."
_BUILTIN: dict[str, str] = {
    "1.3.6.1.2.1.1.1": "SNMPv2-MIB::sysDescr",
    "1.3.6.1.2.1.1.2": "SNMPv2-MIB::sysObjectID",
    "1.3.6.1.2.1.1.3": "SNMPv2-MIB::sysUpTime",
    "1.3.6.1.2.1.1.4": "SNMPv2-MIB::sysContact",
    "1.3.6.1.2.1.1.5": "SNMPv2-MIB::sysName",
    "1.3.6.1.2.1.1.6": "SNMPv2-MIB::sysLocation",
    "1.3.6.1.6.3.1.1.4.1": "SNMPv2-MIB::snmpTrapOID",
    "1.3.6.1.6.3.1.1.4.3": "SNMPv2-MIB::snmpTrapEnterprise",
    "1.3.6.1.6.3.1.1.5.1": "SNMPv2-MIB::coldStart",
    "1.3.6.1.6.3.1.1.5.2": "SNMPv2-MIB::warmStart",
    "1.3.6.1.6.3.1.1.5.3": "IF-MIB::linkDown",
    "1.3.6.1.6.3.1.1.5.4": "IF-MIB::linkUp",
    "1.3.6.1.6.3.1.1.5.5": "SNMPv2-MIB::authenticationFailure",
    "1.3.6.1.6.3.18.1.3": "SNMP-COMMUNITY-MIB::snmpTrapAddress",
    "1.3.6.1.6.3.18.1.4": "SNMP-COMMUNITY-MIB::snmpTrapCommunity",
    "1.3.6.1.2.1.2.1": "IF-MIB::ifNumber",
    _IF + "1": "IF-MIB::ifIndex",
    _IF + "2": "IF-MIB::ifDescr",
    _IF + "3": "IF-MIB::ifType",
    _IF + "4": "IF-MIB::ifMtu",
    _IF + "5": "IF-MIB::ifSpeed",
    _IF + "6": "IF-MIB::ifPhysAddress",
    _IF + "7": "IF-MIB::ifAdminStatus",
    _IF + "8": "IF-MIB::ifOperStatus",
    _IF + "9": "IF-MIB::ifLastChange",
    _IF + "10": "IF-MIB::ifInOctets",
    _IF + "13": "IF-MIB::ifInDiscards",
    _IF + "14": "IF-MIB::ifInErrors",
    _IF + "16": "IF-MIB::ifOutOctets",
    _IF + "19": "IF-MIB::ifOutDiscards",
    _IF + "20": "IF-MIB::ifOutErrors",
    _IFX + "1": "IF-MIB::ifName",
    _IFX + "6": "IF-MIB::ifHCInOctets",
    _IFX + "10": "IF-MIB::ifHCOutOctets",
    _IFX + "15": "IF-MIB::ifHighSpeed",
    _IFX + "18": "IF-MIB::ifAlias",
    "1.3.6.1.2.1.25.1.1": "HOST-RESOURCES-MIB::hrSystemUptime",
    _HRS + "1": "HOST-RESOURCES-MIB::hrStorageIndex",
    _HRS + "2": "HOST-RESOURCES-MIB::hrStorageType",
    _HRS + "3": "HOST-RESOURCES-MIB::hrStorageDescr",
    _HRS + "4": "HOST-RESOURCES-MIB::hrStorageAllocationUnits",
    _HRS + "5": "HOST-RESOURCES-MIB::hrStorageSize",
    _HRS + "6": "HOST-RESOURCES-MIB::hrStorageUsed",
    "1.3.6.1.2.1.25.3.3.1.2": "HOST-RESOURCES-MIB::hrProcessorLoad",
    "1.3.6.1.2.1.15.3.1.2": "BGP4-MIB::bgpPeerState",
    "1.3.6.1.2.1.15.3.1.14": "BGP4-MIB::bgpPeerLastError",
    "1.3.6.1.2.1.15.7.1": "BGP4-MIB::bgpEstablished",
    "1.3.6.1.2.1.15.7.2": "BGP4-MIB::bgpBackwardTransition",
}
# Enumerated INTEGER objects of the built-in table: value -> label, as their MIBs define them.
_IF_STATUS = {1: "up", 2: "down", 3: "testing"}
IF_OPER_STATUS = {**_IF_STATUS, 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
_BUILTIN_ENUMS: dict[str, dict[int, str]] = {
    "IF-MIB::ifAdminStatus": _IF_STATUS,
    "IF-MIB::ifOperStatus": IF_OPER_STATUS,
    "BGP4-MIB::bgpPeerState": {
        1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm", 6: "established"
    },
}  # fmt: skip
# SNMPv2-TC's enumerated textual conventions, which vendor MIBs use as an object's SYNTAX.
_TC_ENUMS: dict[str, dict[int, str]] = {
    "TruthValue": {1: "true", 2: "false"},
    "RowStatus": {
        1: "active", 2: "notInService", 3: "notReady", 4: "createAndGo", 5: "createAndWait", 6: "destroy"
    },
    "StorageType": {1: "other", 2: "volatile", 3: "nonVolatile", 4: "permanent", 5: "readOnly"},
}  # fmt: skip
_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Compiled:
    """What the collector takes from compiled MIBs: names by OID, enumeration labels by name."""

    names: dict[str, str] = field(default_factory=dict)  # dotted OID -> 'MODULE::name'
    enums: dict[str, dict[int, str]] = field(default_factory=dict)  # 'MODULE::name' -> {1: 'up'}


class Resolver:
    """Longest-prefix OID lookup. Results are cached by the raw OID bytes, so the hot path is a dict hit."""

    def __init__(
        self, extra: dict[str, str] | None = None, enums: dict[str, dict[int, str]] | None = None
    ) -> None:
        self._names: dict[str, str] = dict(_BUILTIN)
        self._names.update(extra or {})
        self._cache: dict[bytes, tuple[str, str, str]] = {}
        # Qualified name -> {value: label}; the mapping names an enumerated INTEGER with one dict read.
        self.enums: dict[str, dict[int, str]] = {**_BUILTIN_ENUMS, **(enums or {})}

    @classmethod
    def from_cache_dir(cls, directory: Path | None) -> Resolver:
        """Built-in table plus every compiled MIB (*.json) found in directory (absent: none)."""
        compiled = load_compiled(directory) if directory is not None else Compiled()
        return cls(compiled.names, compiled.enums)

    def __len__(self) -> int:
        return len(self._names)

    def lookup(self, raw: bytes) -> tuple[str, str, str]:
        """(qualified name or dotted OID, short name or dotted OID, instance suffix) of raw OID bytes.

        `1.3.6.1.2.1.2.2.1.2.3` -> ("IF-MIB::ifDescr", "ifDescr", "3"); unresolved OIDs stay numeric.
        """
        hit = self._cache.get(raw)
        if hit is None:
            hit = self.resolve(oid_str(raw))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # instance OIDs are unbounded; a cold restart of the cache is cheap
            self._cache[raw] = hit
        return hit

    def resolve(self, dotted: str) -> tuple[str, str, str]:
        prefix, rest = dotted, ""
        while True:
            name = self._names.get(prefix)
            if name is not None:
                return name, name.partition("::")[2], rest
            cut = prefix.rfind(".")
            if cut <= 0:
                return dotted, dotted, ""
            rest = prefix[cut + 1 :] + ("." + rest if rest else "")
            prefix = prefix[:cut]


def load_compiled(directory: Path) -> Compiled:
    """Names and enumerations from the JSON modules pysmi wrote into directory."""
    out = Compiled()
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            log.warning("%s: skipped, not a compiled MIB: %s", path, e)
            continue
        if not isinstance(doc, dict):
            continue
        meta = doc.get("meta")
        module = meta.get("module", path.stem) if isinstance(meta, dict) else path.stem
        for sym in doc.values():
            if isinstance(sym, dict) and isinstance(sym.get("oid"), str) and isinstance(sym.get("name"), str):
                qualified = f"{module}::{sym['name']}"
                out.names.setdefault(sym["oid"], qualified)
                labels = _enumeration(sym.get("syntax"), doc)
                if labels:
                    out.enums.setdefault(qualified, labels)
    return out


def _enumeration(syntax: object, doc: dict[str, object]) -> dict[int, str] | None:
    """{value: label} of an INTEGER { up(1), down(2) } SYNTAX, directly or through a textual
    convention of the same module or SNMPv2-TC; None for anything else."""
    if not isinstance(syntax, dict):
        return None
    enum = (syntax.get("constraints") or {}).get("enumeration")
    if not enum:
        tc = doc.get(syntax.get("type", ""))
        if isinstance(tc, dict) and tc.get("class") == "textualconvention":
            return _enumeration(tc.get("type"), doc)
        return _TC_ENUMS.get(str(syntax.get("type")))
    if not isinstance(enum, dict):
        return None
    return {v: str(k) for k, v in enum.items() if isinstance(v, int) and not isinstance(v, bool)}
