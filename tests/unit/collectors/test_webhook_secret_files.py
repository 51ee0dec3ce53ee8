"""Webhook tokens and HMAC secrets read from files (mounted secrets) instead of the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.webhook.sources import parse_sources
from correlator.errors import ConfigError


def test_a_source_reads_its_token_and_hmac_secret_from_files(tmp_path: Path):
    (tmp_path / "token").write_text("am-token\n")
    (tmp_path / "hmac").write_text("am-hmac\n")
    raw = {
        "am": {
            "format": "alertmanager",
            "token_file": str(tmp_path / "token"),
            "hmac_secret_file": str(tmp_path / "hmac"),
        }
    }
    src = parse_sources(raw, "collectors.webhook.sources")["am"]
    assert (src.token, src.hmac_secret) == ("am-token", b"am-hmac")


def test_inline_and_file_together_or_an_unreadable_file_is_refused(tmp_path: Path):
    (tmp_path / "token").write_text("am-token")
    both = {"am": {"format": "alertmanager", "token": "x", "token_file": str(tmp_path / "token")}}
    with pytest.raises(ConfigError, match=r"sources.am.token_file': give either token or token_file"):
        parse_sources(both, "collectors.webhook.sources")
    missing = {"am": {"format": "alertmanager", "token_file": str(tmp_path / "nope")}}
    with pytest.raises(ConfigError, match=r"sources.am.token_file': cannot read .*nope"):
        parse_sources(missing, "collectors.webhook.sources")
