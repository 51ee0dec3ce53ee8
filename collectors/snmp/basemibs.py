"""Minimal stand-ins for the SMIv2 base modules (RFC 2578-2580), so pysmi can compile vendor MIBs.

Debian ships no IETF MIB texts and pysmi downloads them from the internet; these define just the
OID roots, types and macro names that vendor modules import. Used by mibs.py only.
"""

from __future__ import annotations

BASE_MIBS: dict[str, str] = {
    "SNMPv2-CONF": """\
SNMPv2-CONF DEFINITIONS ::= BEGIN

-- Minimal stand-in for RFC 2580 SNMPv2-CONF: its macros are implemented by the compiler.

OBJECT-GROUP MACRO ::= BEGIN END
NOTIFICATION-GROUP MACRO ::= BEGIN END
MODULE-COMPLIANCE MACRO ::= BEGIN END
AGENT-CAPABILITIES MACRO ::= BEGIN END

END
""",
    "SNMPv2-SMI": """\
SNMPv2-SMI DEFINITIONS ::= BEGIN

-- Minimal stand-in for RFC 2578 SNMPv2-SMI: the OID roots and types that modules import.
-- The macros are implemented by the compiler itself.

MODULE-IDENTITY MACRO ::= BEGIN END
OBJECT-IDENTITY MACRO ::= BEGIN END
OBJECT-TYPE MACRO ::= BEGIN END
NOTIFICATION-TYPE MACRO ::= BEGIN END

org            OBJECT IDENTIFIER ::= { iso 3 }
dod            OBJECT IDENTIFIER ::= { org 6 }
internet       OBJECT IDENTIFIER ::= { dod 1 }
directory      OBJECT IDENTIFIER ::= { internet 1 }
mgmt           OBJECT IDENTIFIER ::= { internet 2 }
mib-2          OBJECT IDENTIFIER ::= { mgmt 1 }
transmission   OBJECT IDENTIFIER ::= { mib-2 10 }
experimental   OBJECT IDENTIFIER ::= { internet 3 }
private        OBJECT IDENTIFIER ::= { internet 4 }
enterprises    OBJECT IDENTIFIER ::= { private 1 }
security       OBJECT IDENTIFIER ::= { internet 5 }
snmpV2         OBJECT IDENTIFIER ::= { internet 6 }
snmpDomains    OBJECT IDENTIFIER ::= { snmpV2 1 }
snmpProxys     OBJECT IDENTIFIER ::= { snmpV2 2 }
snmpModules    OBJECT IDENTIFIER ::= { snmpV2 3 }
zeroDotZero    OBJECT IDENTIFIER ::= { 0 0 }

Integer32 ::= INTEGER (-2147483648..2147483647)
IpAddress ::= [APPLICATION 0] IMPLICIT OCTET STRING (SIZE (4))
Counter32 ::= [APPLICATION 1] IMPLICIT INTEGER (0..4294967295)
Gauge32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
TimeTicks ::= [APPLICATION 3] IMPLICIT INTEGER (0..4294967295)
Opaque ::= [APPLICATION 4] IMPLICIT OCTET STRING
Counter64 ::= [APPLICATION 6] IMPLICIT INTEGER (0..18446744073709551615)

END
""",
    "SNMPv2-TC": """\
SNMPv2-TC DEFINITIONS ::= BEGIN

-- Minimal stand-in for RFC 2579 SNMPv2-TC: the common textual conventions as plain types.

IMPORTS
    TimeTicks FROM SNMPv2-SMI;

TEXTUAL-CONVENTION MACRO ::= BEGIN END

DisplayString ::= OCTET STRING (SIZE (0..255))
PhysAddress ::= OCTET STRING
MacAddress ::= OCTET STRING (SIZE (6))
TruthValue ::= INTEGER { true(1), false(2) }
TestAndIncr ::= INTEGER (0..2147483647)
AutonomousType ::= OBJECT IDENTIFIER
InstancePointer ::= OBJECT IDENTIFIER
VariablePointer ::= OBJECT IDENTIFIER
RowPointer ::= OBJECT IDENTIFIER
RowStatus ::= INTEGER { active(1), notInService(2), notReady(3), createAndGo(4),
                        createAndWait(5), destroy(6) }
TimeStamp ::= TimeTicks
TimeInterval ::= INTEGER (0..2147483647)
DateAndTime ::= OCTET STRING (SIZE (8 | 11))
StorageType ::= INTEGER { other(1), volatile(2), nonVolatile(3), permanent(4), readOnly(5) }
TDomain ::= OBJECT IDENTIFIER
TAddress ::= OCTET STRING (SIZE (1..255))

END
""",
}
