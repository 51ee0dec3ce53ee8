"""The collectors.syslog section: defaults, secure-by-default exposure, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.syslog.settings import parse
from correlator.errors import ConfigError


def test_defaults_listen_on_loopback_only():
    s = parse({})
    assert s.udp == ("127.0.0.1", 5514) and s.tcp == ("127.0.0.1", 5514) and s.tls is None
    assert s.allowed_senders == () and not s.allow_any_sender


def test_transports_switch_off_with_null():
    s = parse({"udp": None, "tcp": "[::1]:6000"})
    assert s.udp is None and s.tcp == ("::1", 6000)


@pytest.mark.parametrize("key", ["udp", "tcp"])
def test_an_open_listener_needs_allowed_senders(key):
    with pytest.raises(ConfigError, match=rf"'collectors.syslog.{key}': 0.0.0.0 is not a loopback address"):
        parse({key: "0.0.0.0:514"})
    assert parse({key: "0.0.0.0:514", "allowed_senders": ["10.0.0.0/8", "2001:db8::1"]}).allowed_senders
    assert parse({key: "0.0.0.0:514", "allow_any_sender": True}).allow_any_sender


def test_an_open_tls_listener_needs_client_certificates_or_allowed_senders(tmp_path: Path):
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    tls = {
        "listen": "0.0.0.0:6514",
        "cert_file": str(tmp_path / "c.pem"),
        "key_file": str(tmp_path / "k.pem"),
    }
    with pytest.raises(ConfigError, match="client_ca_file"):
        parse({"tls": tls})
    assert parse({"tls": {**tls, "client_ca_file": str(tmp_path / "ca.pem")}}).tls is not None
    with pytest.raises(ConfigError, match=r"'collectors.syslog.tls.key_file': required"):
        parse({"tls": {"listen": "127.0.0.1:6514", "cert_file": str(tmp_path / "c.pem")}})
    with pytest.raises(
        ConfigError, match=r"'collectors.syslog.tls.cert_file': expected the path of a readable"
    ):
        parse({"tls": {**tls, "cert_file": str(tmp_path / "missing.pem")}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"udpp": "127.0.0.1:1"}, r"'collectors.syslog.udpp': unknown key \(did you mean 'udp'\?\)"),
        ({"udp": "nowhere"}, r"'collectors.syslog.udp': expected HOST:PORT"),
        (
            {"allowed_senders": ["10.0.0.0/33"]},
            r"'collectors.syslog.allowed_senders\[0\]': expected an address",
        ),
        ({"allowed_senders": []}, r"'collectors.syslog.allowed_senders': expected a non-empty list"),
        ({"max_message_bytes": 0}, r"'collectors.syslog.max_message_bytes': expected a whole number >= 1"),
        ({"max_message_bytes": 70000}, r"at most 65536"),
        ({"max_clock_skew": "soon"}, r"'collectors.syslog.max_clock_skew': expected a duration"),
        ({"idle_timeout": "soon"}, r"'collectors.syslog.idle_timeout': expected a duration"),
        ({"idle_timeout": 0}, r"'collectors.syslog.idle_timeout': expected a duration of at least 100ms"),
        ({"idle_timeout": 1e-9}, r"'collectors.syslog.idle_timeout': expected a duration of at least 100ms"),
        ({"hosts": {"10.0.0.1": 5}}, r"'collectors.syslog.hosts': expected a mapping"),
        ({"allow_any_sender": "yes"}, r"'collectors.syslog.allow_any_sender': expected true or false"),
    ],
)
def test_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_idle_timeout_is_off_by_default_and_null_keeps_idle_connections():
    assert parse({}).idle_timeout is None
    assert parse({"idle_timeout": "5m"}).idle_timeout == 300.0
    assert parse({"idle_timeout": None}).idle_timeout is None
