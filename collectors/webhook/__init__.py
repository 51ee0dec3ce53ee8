"""HTTP webhook collector: `POST /api/v1/events` (the generic format) and `POST /api/v1/webhooks/{source}`
(Alertmanager, Grafana, Zabbix, Nagios/Icinga, mapped) on the daemon's HTTP server.

Settings (`collectors.webhook`): `token` (or `token_file`), the bearer token of the generic endpoint
(null: none needed); `sources`, the named webhook sources (docs/collectors/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.webhook.generic import GenericEventsHandler
from collectors.webhook.sources import SourcesHandler, parse_sources
from correlator.collector import CollectorContext
from correlator.errors import ConfigError, did_you_mean
from correlator.secretfile import secrets_from_files

_KEYS = {"token", "token_file", "sources"}


class WebhookCollector:
    name = "webhook"
    where = "POST /api/v1/events and /api/v1/webhooks/{source} on the HTTP API"

    async def start(self) -> None:
        """Nothing to start: the routes ride the daemon's HTTP server."""

    async def stop(self) -> None:
        """Nothing to stop: the HTTP server stops with the daemon."""

    def healthy(self) -> bool:
        return True


def create(settings: Mapping[str, Any], ctx: CollectorContext) -> WebhookCollector:
    for key in settings:
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            extra = f" (did you mean '{hint}'?)" if hint else f"; known: {', '.join(sorted(_KEYS))}"
            raise ConfigError(f"'collectors.webhook.{key}': unknown key{extra}")
    token = secrets_from_files(settings, ("token",), "collectors.webhook").get("token")
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError("'collectors.webhook.token': expected a non-empty string or null")
    handler = GenericEventsHandler(ctx.emit, ctx.retry_after, token)
    ctx.http.router.add_post("/api/v1/events", handler.handle)
    sources = parse_sources(settings.get("sources"), "collectors.webhook.sources")
    ctx.http.router.add_post(
        "/api/v1/webhooks/{source}", SourcesHandler(ctx.emit, ctx.retry_after, sources).handle
    )
    return WebhookCollector()
