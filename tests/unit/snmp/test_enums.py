"""Enumerated INTEGER varbinds become their labels (ifOperStatus: down) with the number kept beside
them (ifOperStatus_value: 2), from the built-in table and from operators' compiled MIBs."""

from __future__ import annotations

from collectors.snmp.ber import oid_bytes
from collectors.snmp.mapping import Mapper
from collectors.snmp.mibs import compile_dir
from collectors.snmp.oids import Resolver
from tests.support.snmp import ACME_MIB

TRAP_OID = oid_bytes("1.3.6.1.6.3.1.1.4.1.0")
IF = "1.3.6.1.2.1.2.2.1."


def attrs(resolver: Resolver, *varbinds: tuple[str, object]) -> dict[str, object]:
    vbs = [(TRAP_OID, ("oid", oid_bytes("1.3.6.1.6.3.1.1.5.3")))]
    vbs += [(oid_bytes(o), v) for o, v in varbinds]
    return Mapper(resolver, {}).from_varbinds(vbs, "10.0.0.1", "v2c", 0.0).attributes


def test_standard_enumerations_are_named_and_keep_their_number():
    a = attrs(
        Resolver(), (IF + "1.3", 3), (IF + "7.3", 1), (IF + "8.3", 2), ("1.3.6.1.2.1.15.3.1.2.10.0.0.2", 6)
    )
    assert (a["ifAdminStatus"], a["ifAdminStatus_value"]) == ("up", 1)
    assert (a["ifOperStatus"], a["ifOperStatus_value"]) == ("down", 2)
    assert (a["bgpPeerState"], a["bgpPeerState_value"]) == ("established", 6)
    assert a["ifIndex"] == 3 and "ifIndex_value" not in a  # not an enumeration


def test_a_value_outside_the_enumeration_stays_a_number_and_odd_types_are_left_alone():
    a = attrs(Resolver(), (IF + "8.3", 42), (IF + "7.3", b"up"))
    assert a["ifOperStatus"] == 42 and "ifOperStatus_value" not in a
    assert a["ifAdminStatus"] == "up" and "ifAdminStatus_value" not in a  # an agent sending a string


def test_repeated_objects_keep_their_instance_in_both_keys():
    a = attrs(Resolver(), (IF + "8.3", 1), (IF + "8.4", 7))
    assert (a["ifOperStatus"], a["ifOperStatus.4"], a["ifOperStatus.4_value"]) == ("up", "lowerLayerDown", 7)


def test_compiled_mibs_bring_their_enumerations_also_through_textual_conventions(tmp_path):
    src = tmp_path / "mibs"
    src.mkdir()
    text = ACME_MIB.replace("SYNTAX Integer32", "SYNTAX INTEGER { ok(1), failed(2), absent(3) }")
    text = text.replace(
        "DisplayString FROM SNMPv2-TC;",
        "TEXTUAL-CONVENTION FROM SNMPv2-TC;\n\n"
        'AcmeName ::= TEXTUAL-CONVENTION\n    STATUS current\n    DESCRIPTION "fan position"\n'
        "    SYNTAX INTEGER { front(1), rear(2) }",
    )
    (src / "ACME-MIB.txt").write_text(text.replace("SYNTAX DisplayString", "SYNTAX AcmeName"))
    result = compile_dir(src, tmp_path / "cache")
    assert result.compiled == ["ACME-MIB"], result.errors
    r = Resolver.from_cache_dir(tmp_path / "cache")
    a = attrs(r, ("1.3.6.1.4.1.99999.1.1.0", 2), ("1.3.6.1.4.1.99999.1.2.0", 1))
    assert (a["acmeFanSpeed"], a["acmeFanSpeed_value"]) == ("failed", 2)
    assert (a["acmeFanName"], a["acmeFanName_value"]) == ("front", 1)
