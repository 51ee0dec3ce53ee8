"""The listen policy: the HTTP API is served beyond this host only behind tokens, unless allowed on purpose.

Checked at start, before any file is opened: an address other than loopback with no API tokens, or
with webhook ingest and no ingest token, stops the daemon unless `http.allow_open: true`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from correlator.collector import enabled_section
from correlator.config import Config
from correlator.errors import ConfigError

log = logging.getLogger(__name__)


def check_exposure(config: Config, has_api_tokens: bool) -> None:
    """Raise ConfigError (one line: what is missing and the three ways out) for an open listener."""
    host, port = config.http.listen
    missing = missing_credentials(config, has_api_tokens)
    if is_loopback(host) or not missing:
        return
    if config.http.allow_open:
        log.warning(
            "http.allow_open is set: listening on %s:%d without %s; anyone who reaches the port may use it",
            host,
            port,
            " and ".join(missing),
        )
        return
    raise ConfigError(
        f"'http.listen': refusing to listen on {host}:{port} without {' and '.join(missing)}; "
        "listen on 127.0.0.1, configure them, or set http.allow_open: true (docs/operations.md)"
    )


def missing_credentials(config: Config, has_api_tokens: bool) -> list[str]:
    missing = [] if has_api_tokens else ["API tokens (http.tokens or http.tokens_file)"]
    webhook = enabled_section(config, "webhook")
    if webhook is None:
        return missing
    if not _has(webhook, "token"):
        missing.append("an ingest token (collectors.webhook.token or token_file)")
    sources = webhook.get("sources")
    for name, src in (sources or {}).items() if isinstance(sources, Mapping) else ():
        if isinstance(src, Mapping) and not (_has(src, "token") or _has(src, "hmac_secret")):
            missing.append(f"a token or hmac_secret for collectors.webhook.sources.{name}")
    return missing


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or 'localhost'; any other name may resolve to anything, so it counts as open."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _has(settings: Mapping[str, Any], key: str) -> bool:
    return settings.get(key) is not None or settings.get(f"{key}_file") is not None
