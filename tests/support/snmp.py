"""net-snmp helpers for tests: run snmptrap/snmpinform and start an snmpd, all on 127.0.0.1 free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from collectors.snmp import ber
from tests.support.daemon import free_port, need_tool

V3_USER = ["-u", "noc", "-l", "authPriv", "-a", "SHA", "-A", "authpass123", "-x", "AES", "-X", "privpass123"]
V3_SETTINGS = {
    "name": "noc",
    "auth_protocol": "SHA",
    "auth_key": "authpass123",
    "priv_protocol": "AES",
    "priv_key": "privpass123",
    "engine_ids": ["8000000001020304"],
}
SENDER_ENGINE_ID = "8000000001020304"
V3_SHA2_USER = [
    "-u",
    "ops",
    "-l",
    "authPriv",
    "-a",
    "SHA-512",
    "-A",
    "authpass456",
    "-x",
    "AES-256",
    "-X",
    "privpass456",
]
V3_SHA2_SETTINGS = {
    "name": "ops",
    "auth_protocol": "SHA-512",
    "auth_key": "authpass456",
    "priv_protocol": "AES-256",
    "priv_key": "privpass456",
    "engine_ids": [SENDER_ENGINE_ID],
}


def snmp_env(tmp: Path) -> dict[str, str]:
    # No MIB loading (numeric OIDs only) and a private persistent dir, so runs leave nothing behind.
    return dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp / "net-snmp"), MIBS="", MIBDIRS=str(tmp))


def run_tool(
    tool: str, args: list[str], tmp: Path, timeout: float = 15.0
) -> subprocess.CompletedProcess[str]:
    path = need_tool(tool, "snmp")
    return subprocess.run(
        [path, *args], env=snmp_env(tmp), capture_output=True, text=True, timeout=timeout, check=False
    )


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@contextmanager
def snmpd(
    tmp: Path, port: int | None = None, engine_id: str | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real snmpd on 127.0.0.1:port answering v2c 'public' and v3 user 'noc' (authPriv); its
    SNMPv3 engine id is built from the text `engine_id` when given (else net-snmp's own)."""
    path = need_tool("snmpd", "snmpd")
    port = port or free_udp_port()
    conf = tmp / "snmpd.conf"
    conf.write_text(
        (f"engineID {engine_id}\n" if engine_id else "")
        + "rocommunity public 127.0.0.1\ncreateUser noc SHA authpass123 AES privpass123\nrouser noc priv\n"
    )
    log = (tmp / f"snmpd-{port}.log").open("ab")
    proc = subprocess.Popen(
        [path, "-f", "-Lo", "-C", "-c", str(conf), f"127.0.0.1:{port}"],
        env=snmp_env(tmp),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = run_tool(
                "snmpget",
                ["-v2c", "-c", "public", "-t", "0.3", "-r", "0", f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
                tmp,
            )
            if r.returncode == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"snmpd exited with {proc.returncode}")
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# SNMP messages built by hand, for what net-snmp will not send: kilobytes of varbinds in a request to
# a trap port, an SNMPv3 message without a user name, a digest of zeros.

AUTH, REPORTABLE = 0x01, 0x04  # SNMPv3 msgFlags


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + ber.encode_length(len(content)) + content


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def snmp_pdu(pdu_type: int, n_varbinds: int) -> bytes:
    """A PDU (request-id 4242) of n varbinds of an OID and NULL, about 16 bytes each."""
    vbl = b"".join(
        tlv(0x30, tlv(0x06, ber.oid_bytes(f"1.3.6.1.4.1.99999.{i}")) + b"\x05\x00") for i in range(n_varbinds)
    )
    return tlv(pdu_type, integer(4242) + integer(0) + integer(0) + tlv(0x30, vbl))


def v2c_message(community: bytes, pdu_type: int, n_varbinds: int = 3) -> bytes:
    return tlv(0x30, integer(1) + tlv(0x04, community) + snmp_pdu(pdu_type, n_varbinds))


def v3_message(user: bytes, engine_id: str, pdu_type: int, flags: int = 0, n_varbinds: int = 3) -> bytes:
    """An SNMPv3 message (USM) with its scoped PDU in clear; with AUTH in flags its digest is zeros,
    so it does not authenticate."""
    eid = bytes.fromhex(engine_id)
    digest = bytes(12 if flags & AUTH else 0)
    usm = tlv(0x04, eid) + integer(1) + integer(100) + tlv(0x04, user) + tlv(0x04, digest) + tlv(0x04, b"")
    header = tlv(0x30, integer(77) + integer(65507) + tlv(0x04, bytes((flags,))) + integer(3))
    scoped = tlv(0x30, tlv(0x04, eid) + tlv(0x04, b"") + snmp_pdu(pdu_type, n_varbinds))
    return tlv(0x30, integer(3) + header + tlv(0x04, tlv(0x30, usm)) + scoped)


# A vendor MIB fixture: a notification (99999.0.17) with two objects; line 18 is the SYNTAX of acmeFanSpeed.
ACME_MIB = """\
ACME-MIB DEFINITIONS ::= BEGIN
IMPORTS
    MODULE-IDENTITY, OBJECT-TYPE, NOTIFICATION-TYPE, Integer32, enterprises
        FROM SNMPv2-SMI
    DisplayString FROM SNMPv2-TC;

acme MODULE-IDENTITY
    LAST-UPDATED "202611300000Z"
    ORGANIZATION "Acme"
    CONTACT-INFO "noc@acme.example"
    DESCRIPTION "Fixture MIB for the SNMP collector's tests"
    ::= { enterprises 99999 }

acmeObjects OBJECT IDENTIFIER ::= { acme 1 }
acmeTraps OBJECT IDENTIFIER ::= { acme 0 }

acmeFanSpeed OBJECT-TYPE
    SYNTAX Integer32
    MAX-ACCESS accessible-for-notify
    STATUS current
    DESCRIPTION "Fan speed in rpm"
    ::= { acmeObjects 1 }

acmeFanName OBJECT-TYPE
    SYNTAX DisplayString
    MAX-ACCESS accessible-for-notify
    STATUS current
    DESCRIPTION "Fan name"
    ::= { acmeObjects 2 }

acmeFanFailed NOTIFICATION-TYPE
    OBJECTS { acmeFanSpeed, acmeFanName }
    STATUS current
    DESCRIPTION "A fan failed"
    ::= { acmeTraps 17 }
END
"""
