"""Configuration: defaults < file < flags, and errors that name the key, the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.config import Config, describe, load_config, parse_duration, parse_hostport
from correlator.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "correlator.yaml"
    p.write_text(text)
    return p


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.http.listen == ("127.0.0.1", 8080)
    assert cfg.storage.retention == 7 * 86400


def test_file_then_flags(tmp_path):
    p = write(tmp_path, "http:\n  listen: 0.0.0.0:9000\nstorage:\n  retention: 2d\nrules_dir: /etc/rules\n")
    cfg = load_config(p, {"http.listen": "127.0.0.1:9100"})
    assert cfg.http.listen == ("127.0.0.1", 9100)  # the flag wins
    assert cfg.storage.retention == 2 * 86400
    assert cfg.rules_dir == Path("/etc/rules")


def test_empty_file_is_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("http:\n  lisen: 1.2.3.4:5\n", ":2:3: unknown key 'http.lisen' (did you mean 'http.listen'?)"),
        ("storage:\n  retention: forever\n", ":2:14: 'storage.retention': expected a duration"),
        ("http:\n  listen: nowhere\n", "'http.listen': expected HOST:PORT"),
        ("queue:\n  max_events: -1\n", "'queue.max_events': expected a whole number"),
        ("storage:\n  fsync: maybe\n", "'storage.fsync': expected true or false"),
        ("logging:\n  format: xml\n", "'logging.format': expected one of 'text', 'json'"),
        ("http: [1]\n", "'http': expected a mapping"),
        ("http:\n  listen: a\n listen: b\n", "YAML syntax error"),
        ("http:\n  listen: a:1\n  listen: b:2\n", ":3:3: duplicate key 'listen'"),
        ("- 1\n", "must be a mapping"),
    ],
)
def test_errors_name_the_key_and_position(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert words in str(e.value)
    assert str(tmp_path / "correlator.yaml") in str(e.value) or "'" in str(e.value)


def test_unknown_flag_override():
    with pytest.raises(ConfigError, match=r"unknown setting 'http\.nope'"):
        load_config(None, {"http.nope": 1})


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), (12, 12), ("1.5m", 90)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_hostport():
    assert parse_hostport("[::1]:80") == ("::1", 80)
    assert parse_hostport(":80") == ("127.0.0.1", 80)
    with pytest.raises(ValueError):
        parse_hostport("host:99999")


def test_every_setting_is_documented():
    rows = describe()
    assert all(doc for _, _, doc in rows), [k for k, _, d in rows if not d]
    docs = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text()
    missing = [key for key, _, _ in rows if f"`{key}`" not in docs]
    assert not missing, f"docs/configuration.md does not describe {missing}"


def test_every_bad_key_is_reported_at_once(tmp_path):
    p = write(tmp_path, "http:\n  listen: nowhere\nstorage:\n  retention: soon\nrules_dri: x\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    lines = str(e.value).splitlines()
    assert lines == [
        f"{p}:2:11: 'http.listen': expected HOST:PORT such as 127.0.0.1:8080, got 'nowhere'",
        f"{p}:4:14: 'storage.retention': expected a duration like '30s', '5m' or '7d', got 'soon'",
        f"{p}:5:1: unknown key 'rules_dri' (did you mean 'rules_dir'?)",
    ]


def test_a_collectors_section_is_merged_with_the_default_one(tmp_path):
    # naming only mqtt must not switch HTTP ingest (webhook) or SNMP off; `enabled: false` does
    cfg = load_config(write(tmp_path, "collectors:\n  mqtt: {brokers: []}\n  snmp: {enabled: false}\n"))
    assert cfg.collectors == {"webhook": {}, "snmp": {"enabled": False}, "mqtt": {"brokers": []}}
    assert load_config(None).collectors == {"webhook": {}, "snmp": {}}
