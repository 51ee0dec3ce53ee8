"""The listen policy: which configurations may listen beyond loopback."""

from __future__ import annotations

import logging

import pytest

from correlator.api.exposure import check_exposure, is_loopback
from correlator.config import Config, HttpConfig
from correlator.errors import ConfigError


def config(host: str = "0.0.0.0", allow_open: bool = False, **webhook: object) -> Config:
    return Config(
        http=HttpConfig(listen=(host, 8080), allow_open=allow_open), collectors={"webhook": webhook}
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "localhost"])
def test_loopback_needs_nothing(host: str):
    assert is_loopback(host)
    check_exposure(config(host), has_api_tokens=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "correlator.example.net"])
def test_any_other_address_needs_api_and_ingest_tokens(host: str):
    with pytest.raises(ConfigError, match=r"without API tokens .* and an ingest token"):
        check_exposure(config(host), has_api_tokens=False)
    with pytest.raises(
        ConfigError, match=r"without an ingest token \(collectors.webhook.token or token_file\);"
    ):
        check_exposure(config(host), has_api_tokens=True)
    check_exposure(config(host, token="t"), has_api_tokens=True)
    check_exposure(config(host, token_file="/run/secrets/t"), has_api_tokens=True)


def test_each_webhook_source_needs_a_token_or_a_signature():
    sources = {"am": {"format": "alertmanager", "token_file": "/x"}, "zbx": {"format": "zabbix"}}
    with pytest.raises(ConfigError, match=r"a token or hmac_secret for collectors.webhook.sources.zbx"):
        check_exposure(config(token="t", sources=sources), has_api_tokens=True)
    sources["zbx"]["hmac_secret"] = "s"
    check_exposure(config(token="t", sources=sources), has_api_tokens=True)


@pytest.mark.parametrize("webhook", [None, {}, {"enabled": True}])
def test_a_webhook_section_with_no_value_is_on_and_needs_an_ingest_token(webhook: object):
    cfg = Config(http=HttpConfig(listen=("0.0.0.0", 8080)), collectors={"webhook": webhook})
    with pytest.raises(
        ConfigError, match=r"without an ingest token \(collectors.webhook.token or token_file\);"
    ):
        check_exposure(cfg, has_api_tokens=True)


def test_a_webhook_switched_off_needs_no_ingest_token():
    cfg = Config(http=HttpConfig(listen=("0.0.0.0", 8080)), collectors={"webhook": {"enabled": False}})
    check_exposure(cfg, has_api_tokens=True)


def test_without_the_webhook_collector_only_api_tokens_are_needed():
    cfg = Config(http=HttpConfig(listen=("0.0.0.0", 8080)), collectors={"snmp": {}})
    check_exposure(cfg, has_api_tokens=True)


def test_allow_open_lets_it_start_with_a_warning(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        check_exposure(config(allow_open=True), has_api_tokens=False)
    assert "http.allow_open is set: listening on 0.0.0.0:8080 without API tokens" in caplog.text
