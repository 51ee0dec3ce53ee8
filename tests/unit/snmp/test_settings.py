"""collectors.snmp settings: SNMPv3 security levels and secrets read from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.snmp.settings import parse
from correlator.errors import ConfigError

SHA_AES = {
    "auth_protocol": "SHA",
    "auth_key": "authpass123",
    "priv_protocol": "AES",
    "priv_key": "privpass123",
}


def user(**kw):
    return parse({"users": [{"name": "noc", **kw}]}).users[0]


def test_the_minimum_level_defaults_to_what_the_user_is_configured_for():
    assert user(**SHA_AES).min_security_level == "authPriv"
    assert user(auth_protocol="SHA", auth_key="authpass123").min_security_level == "authNoPriv"
    assert user().min_security_level == "noAuthNoPriv"


def test_the_minimum_can_be_lowered_but_not_raised_above_the_keys():
    assert user(**SHA_AES, min_security_level="noAuthNoPriv").min_security_level == "noAuthNoPriv"
    with pytest.raises(ConfigError, match="authPriv needs keys this user does not have"):
        user(auth_protocol="SHA", auth_key="authpass123", min_security_level="authPriv")
    with pytest.raises(ConfigError, match="expected one of noAuthNoPriv, authNoPriv, authPriv"):
        user(**SHA_AES, min_security_level="priv")


def test_keys_and_communities_come_from_files(tmp_path: Path):
    (tmp_path / "auth").write_text("authpass123\n")
    (tmp_path / "priv").write_text("privpass123\n")
    (tmp_path / "communities").write_text("s3cret-ro\nother-ro\n")
    u = user(
        auth_protocol="SHA",
        auth_key_file=str(tmp_path / "auth"),
        priv_protocol="AES",
        priv_key_file=str(tmp_path / "priv"),
    )
    assert (u.auth_key, u.priv_key) == ("authpass123", "privpass123")
    s = parse({"communities_file": str(tmp_path / "communities")})
    assert s.communities == ("s3cret-ro", "other-ro")


def test_secret_file_errors_name_the_key_and_never_the_secret(tmp_path: Path):
    (tmp_path / "auth").write_text("authpass123")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"auth_key_file': give either auth_key or auth_key_file"):
        user(**{**SHA_AES, "auth_key_file": str(tmp_path / "auth")})
    with pytest.raises(ConfigError, match=r"priv_key_file': cannot read .*missing: No such file") as e:
        user(**{k: v for k, v in SHA_AES.items() if k != "priv_key"}, priv_key_file=str(tmp_path / "missing"))
    assert "privpass123" not in str(e.value)
    with pytest.raises(ConfigError, match=r"communities_file': .*empty is empty"):
        parse({"communities_file": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="either communities or communities_file"):
        parse({"communities": ["a"], "communities_file": str(tmp_path / "auth")})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"communities": [73519046]}, "'collectors.snmp.communities'"),
        ({"communities": ["public", 73519046.5]}, "'collectors.snmp.communities'"),
        (
            {"users": [{"name": "noc", "auth_protocol": "SHA", "auth_key": 84736251907}]},
            ".users[0].auth_key'",
        ),
        ({"users": [{"name": "noc", **SHA_AES, "priv_key": 73519046}]}, ".users[0].priv_key'"),
        ({"targets": [{"name": "a", "address": "h", "community": 73519046}]}, ".targets[0].community'"),
        (
            {
                "targets": [
                    {
                        "name": "a",
                        "address": "h",
                        "version": "v3",
                        "user": {**SHA_AES, "name": "n", "auth_key": 84736251907},
                    }
                ]
            },
            ".targets[0].user.auth_key'",
        ),
    ],
)
def test_a_secret_of_the_wrong_type_is_named_never_shown(raw, key):
    # YAML reads an unquoted community or key of digits as a number: the error names the key and
    # the type it wants, and never the value, which is a working credential once quoted.
    with pytest.raises(ConfigError) as e:
        parse(raw)
    assert key in str(e.value) and "expected a non-empty string" in str(e.value)
    assert "73519046" not in str(e.value) and "84736251907" not in str(e.value)
