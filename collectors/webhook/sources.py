"""`POST /api/v1/webhooks/{source}`: named sources from config, each with a format and its own auth.

Auth is a bearer token and/or an HMAC-SHA256 of the raw body in a header (both compared in constant
time). Bad input follows the generic endpoint: 400 naming index and field (valid items still
accepted), 413, 401, 415, 503 + Retry-After on push-back; an unknown source is 404.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from collectors.webhook import alertmanager, grafana, mapped, nagios, zabbix
from collectors.webhook.formats import Converter, Factory
from collectors.webhook.generic import (
    accept,
    check_bearer,
    count_invalid,
    json_error,
    read_body,
    refuse_if_full,
    reject,
)
from correlator import metrics
from correlator.api.openapi import ERROR, operation, param
from correlator.collector import Emit
from correlator.errors import ConfigError, FieldError
from correlator.event import Event
from correlator.logs import RateLimitedLog
from correlator.secretfile import secrets_from_files

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

FORMATS: dict[str, Factory] = {
    "alertmanager": alertmanager.make,
    "grafana": grafana.make,
    "zabbix": zabbix.make,
    "nagios": nagios.make,
    "icinga": nagios.make,
    "mapped": mapped.make,
}
_JSON = {"application/json", "text/json"}
_FORM = "application/x-www-form-urlencoded"
DEFAULT_HMAC_HEADER = "X-Signature-256"


@dataclass(frozen=True)
class Source:
    name: str
    format: str
    convert: Converter
    token: str | None
    hmac_secret: bytes | None
    hmac_header: str

    @property
    def label(self) -> str:
        return f"webhook:{self.name}"


def parse_sources(raw: object, where: str) -> dict[str, Source]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}': expected a mapping of source name to settings")
    out: dict[str, Source] = {}
    for name, settings in raw.items():
        key = f"{where}.{name}"
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"'{key}': a source name is letters, digits, '-' and '_' (it is a URL path part)"
            )
        if not isinstance(settings, Mapping):
            raise ConfigError(f"'{key}': expected a mapping with at least 'format'")
        settings = secrets_from_files(settings, ("token", "hmac_secret"), key)
        fmt = settings.get("format")
        if fmt not in FORMATS:
            raise ConfigError(f"'{key}.format': expected one of {', '.join(FORMATS)}, got {fmt!r}")
        token = _secret(settings, "token", key)
        secret = _secret(settings, "hmac_secret", key)
        header = settings.get("hmac_header", DEFAULT_HMAC_HEADER)
        if not isinstance(header, str) or not header:
            raise ConfigError(f"'{key}.hmac_header': expected a header name, got {header!r}")
        convert = FORMATS[fmt](settings, key)
        out[name] = Source(name, fmt, convert, token, secret.encode() if secret else None, header)
    return out


def _secret(settings: Mapping[str, Any], k: str, where: str) -> str | None:
    v = settings.get(k)
    if v is not None and (not isinstance(v, str) or not v):
        raise ConfigError(f"'{where}.{k}': expected a non-empty string or null")
    return v


class SourcesHandler:
    def __init__(
        self, emit: Emit, retry_after: Callable[[], float | None], sources: dict[str, Source]
    ) -> None:
        self._emit = emit
        self._retry_after = retry_after
        self._sources = sources

    @operation(
        summary="Ingest a monitoring system's notification (Alertmanager, Grafana, Zabbix, Nagios, mapped)",
        role="webhook",
        tags=("ingest",),
        description="The source name and its format come from collectors.webhook.sources; each source "
        "checks its own bearer token and/or HMAC-SHA256 body signature (docs/collectors/webhooks.md).",
        parameters=(param("source", "path", "a source name configured in collectors.webhook.sources"),),
        request_body={"type": "object"},
        request_types=("application/json", "application/x-www-form-urlencoded"),
        responses={
            202: ("accepted durably", {"type": "object"}),
            400: ("malformed body or invalid items (each listed by index and field)", ERROR),
            401: ("missing or wrong token or signature", ERROR),
            404: ("no source of that name", ERROR),
            413: ("body over http.max_body_bytes", ERROR),
            415: ("unsupported Content-Type", ERROR),
            503: (
                "queue full, journal unable to write (storage unavailable) or shutting down; see Retry-After",
                ERROR,
            ),
        },
    )
    async def handle(self, request: web.Request) -> web.Response:
        src = self._sources.get(request.match_info["source"])
        if src is None:
            return reject(
                "webhook:unknown", "unknown_source", 404, "no webhook source of that name is configured"
            )
        if not check_bearer(request, src.token):
            return _unauthorized(src, "missing or wrong bearer token")
        ctype = request.content_type
        form = ctype == _FORM and src.format in ("nagios", "icinga")
        if ctype not in _JSON and not form:
            want = "application/json" + (f" or {_FORM}" if src.format in ("nagios", "icinga") else "")
            return reject(
                src.label, "unsupported_media_type", 415, f"Content-Type must be {want}, got {ctype!r}"
            )
        full = refuse_if_full(self._retry_after(), src.label)
        if full is not None:
            return full
        body = await read_body(request, src.label)
        if isinstance(body, web.Response):
            return body
        if src.hmac_secret is not None and not _signature_ok(request, body, src):
            return _unauthorized(src, f"missing or wrong HMAC-SHA256 signature in {src.hmac_header}")
        received = time.time()
        doc: Any
        if form:
            doc = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        else:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                return reject(src.label, "malformed_json", 400, f"malformed JSON: {e}")
        try:
            results = src.convert(doc, src.label, received, None if form else body)
        except FieldError as e:
            return reject(src.label, e.reason, 400, f"not a {src.format} payload: {e}", field=e.field)
        events: list[Event] = []
        errors: list[dict[str, Any]] = []
        for index, r in results:
            if isinstance(r, Event):
                events.append(r)
            else:
                errors.append({"index": index, "field": r.field, "message": r.message, "reason": r.reason})
        if not events and not errors:
            return _accepted([])
        if events:
            pushed_back = await accept(self._emit, events, src.label)
            if pushed_back is not None:
                return pushed_back
        ids = [e.id for e in events]
        if errors:
            count_invalid(src.label, errors)
            first = errors[0]
            _ratelog.warning(
                "invalid",
                "%s: %d invalid items, first at index %d: %s: %s",
                src.label,
                len(errors),
                first["index"],
                first["field"],
                first["message"],
            )
            return json_error(400, f"{len(errors)} invalid item(s)", errors=errors, accepted=ids)
        return _accepted(ids)


def _accepted(ids: list[str]) -> web.Response:
    return web.Response(
        status=202, body=orjson.dumps({"accepted": len(ids), "ids": ids}), content_type="application/json"
    )


def _signature_ok(request: web.Request, body: bytes, src: Source) -> bool:
    assert src.hmac_secret is not None
    sent = request.headers.get(src.hmac_header, "").strip().encode("utf-8", "surrogateescape")
    if sent.lower().startswith(b"sha256="):
        sent = sent[7:]
    expected = hmac.new(src.hmac_secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.lower(), expected.encode())


def _unauthorized(src: Source, error: str) -> web.Response:
    metrics.EVENTS_REJECTED.labels(src.label, "unauthorized").inc()
    resp = json_error(401, error)
    if src.token is not None:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="correlator"'
    return resp
