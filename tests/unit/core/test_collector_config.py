"""Collector sections: merged with the defaults, errors with file:line:column, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from correlator.clock import Clock
from correlator.collector import CollectorContext, create_collectors
from correlator.config import load_config
from correlator.errors import ConfigError


async def _noop_emit(events, source):
    return None


def collectors_of(tmp_path: Path, text: str):
    p = tmp_path / "correlator.yaml"
    p.write_text(text)
    config = load_config(p)
    ctx = CollectorContext(_noop_emit, lambda: None, web.Application(), Clock(), config, tmp_path)
    return p, create_collectors(config, ctx)


def test_without_webhook_the_http_ingest_stays_on(tmp_path):
    _, found = collectors_of(tmp_path, "collectors:\n  snmp: {enabled: false}\n")
    assert [c.name for c in found] == ["webhook"]
    assert "POST /api/v1/events" in found[0].where


def test_enabled_false_switches_a_collector_off(tmp_path):
    _, found = collectors_of(tmp_path, "collectors:\n  webhook: {enabled: false}\n  snmp: {enabled: false}\n")
    assert found == []


def test_every_collector_error_with_its_place_and_a_suggestion(tmp_path):
    text = (
        "collectors:\n"
        "  webhook:\n"
        "    tokne: x\n"
        "  snmp:\n"
        "    lisen: 127.0.0.1:1\n"
        "  mqtt:\n"
        "    brokers:\n"
        "      - {name: a, host: h, port: 99999}\n"
        "    subscriptions: [{topic: t}]\n"
        "  pigeon: {}\n"
        "  mqt: {enabled: false}\n"  # switched off: never looked up
    )
    with pytest.raises(ConfigError) as e:
        p, _ = collectors_of(tmp_path, text)
    p = tmp_path / "correlator.yaml"
    lines = str(e.value).splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == f"{p}:3:5: 'collectors.webhook.tokne': unknown key (did you mean 'token'?)"
    assert lines[1].startswith(f"{p}:5:5: 'collectors.snmp.lisen': unknown key (did you mean 'listen'?)")
    assert lines[2].startswith(f"{p}:8:28: 'collectors.mqtt.brokers[0].port': expected a port number")
    assert lines[3] == f"{p}:10:3: 'collectors.pigeon': no such collector; known: mqtt, snmp, syslog, webhook"


def test_a_misspelt_collector_gets_a_suggestion(tmp_path):
    with pytest.raises(
        ConfigError, match=r":2:3: 'collectors.mqt': no such collector \(did you mean 'mqtt'\?\)"
    ):
        collectors_of(tmp_path, "collectors:\n  mqt: {}\n  snmp: {enabled: false}\n")
