"""SNMPv3 security levels: net-snmp senders at every level against users configured at every level.

User names and engine ids travel in clear, so a message below the user's configured level must be
refused (`unsupported_security_level`), or anyone on the network could inject traps under that name.
"""

from __future__ import annotations

import pytest

from tests.support.snmp import SENDER_ENGINE_ID, free_udp_port, run_tool

pytestmark = pytest.mark.integration

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
MARK = "1.3.6.1.4.1.99999.1.2"  # a varbind naming (user, level) so each stored event tells who sent it
LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")
AUTH, PRIV = ["-a", "SHA", "-A", "authpass123"], ["-x", "AES", "-X", "privpass123"]
SHA_AES = {
    "auth_protocol": "SHA",
    "auth_key": "authpass123",
    "priv_protocol": "AES",
    "priv_key": "privpass123",
}
USERS = [
    {"name": "priv", **SHA_AES},
    {"name": "auth", "auth_protocol": "SHA", "auth_key": "authpass123"},
    {"name": "none"},
    {"name": "lowered", **SHA_AES, "min_security_level": "authNoPriv"},  # a sender that cannot encrypt
]
# Exactly these (user, level) pairs are stored; every other combination is refused.
ALLOWED = {
    ("priv", "authPriv"),
    ("auth", "authNoPriv"),
    ("none", "noAuthNoPriv"),
    ("lowered", "authNoPriv"),
    ("lowered", "authPriv"),
}


def sender_args(user: str, level: str) -> list[str]:
    keys = {"noAuthNoPriv": [], "authNoPriv": AUTH, "authPriv": AUTH + PRIV}[level]
    return ["-v", "3", "-u", user, "-l", level, *keys]


def test_only_messages_at_or_above_the_users_level_are_stored(make_daemon, tmp_path):
    port = free_udp_port()
    users = [{**u, "engine_ids": [SENDER_ENGINE_ID]} for u in USERS]
    d = make_daemon(collectors={"snmp": {"listen": f"127.0.0.1:{port}", "communities": [], "users": users}})
    addr = f"127.0.0.1:{port}"
    for user in (u["name"] for u in USERS):
        for level in LEVELS:
            args = [*sender_args(user, level), "-e", SENDER_ENGINE_ID, addr, "", LINK_DOWN]
            res = run_tool("snmptrap", [*args, MARK, "s", f"{user}/{level}"], tmp_path)
            assert res.returncode == 0, res.stderr
    # An inform is refused the same way, and not answered: the sender times out.
    refused = run_tool(
        "snmpinform",
        [*sender_args("priv", "noAuthNoPriv"), "-t", "1", "-r", "0", addr, "", LINK_DOWN, MARK, "s", "x"],
        tmp_path,
    )
    assert refused.returncode != 0
    answered = run_tool(
        "snmpinform",
        [*sender_args("priv", "authPriv"), "-t", "3", "-r", "1", addr, "", LINK_DOWN, MARK, "s", "inform"],
        tmp_path,
    )
    assert answered.returncode == 0, answered.stderr

    def stored():
        events = d.events()
        return events if len(events) == len(ALLOWED) + 1 else None

    events = d.wait_for(stored, what="the allowed traps and the inform stored")
    marks = {e["attributes"][MARK] for e in events}
    assert marks == {f"{u}/{lvl}" for u, lvl in ALLOWED} | {"inform"}

    # 4 users x 3 levels, less the 5 allowed = 7 traps, plus the inform. Below the user's minimum is
    # refused by the collector; above what the user's keys allow, by USM (RFC 3414 3.2 step 5).
    dropped = d.metric("correlator_snmp_dropped_total", {"reason": "unsupported_security_level"})
    assert dropped == 12 - len(ALLOWED) + 1
    for other in ("undelivered", "auth_failed", "decrypt_failed"):
        assert d.metric("correlator_snmp_dropped_total", {"reason": other}) == 0
    log = d.log()
    assert "user 'priv' sent noAuthNoPriv, needs authPriv" in log
    assert "user 'auth' sent authPriv, is configured for authNoPriv" in log
    assert "authpass123" not in log and "privpass123" not in log
    assert d.get("/healthz")[0] == 200
