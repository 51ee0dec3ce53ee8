"""API tokens and roles (viewer < operator < admin), checked by one middleware for every route.

Tokens live in `http.tokens` (and/or the file `http.tokens_file`) as SHA-256 hex digests, never in clear. A route's required role comes
from its `@operation(role=...)`. With no token configured the API is open (local `make run`);
webhook ingest keeps its own token (collectors.webhook.token), checked by its handler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.metrics import Counter

from correlator import yamlfile
from correlator.api.openapi import ROLES, operation_of
from correlator.errors import ConfigError
from correlator.yamlfile import YamlMap

log = logging.getLogger(__name__)

AUTH_FAILURES = Counter(
    "correlator_api_auth_failures_total",
    "API requests refused by the token check (missing, unknown, forbidden)",
    ["reason"],
)
ACTOR = web.RequestKey("actor", str)
ANONYMOUS = "anonymous"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str  # recorded as the actor in the incident audit
    role: str
    sha256: bytes


class TokenAuth:
    def __init__(self, tokens: list[ApiToken] | None = None) -> None:
        self.tokens = tokens or []

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def identify(self, authorization: str | None) -> ApiToken | None:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        # Header bytes that are not UTF-8 arrive as surrogates: encode them back instead of raising.
        digest = hashlib.sha256(value.strip().encode("utf-8", "surrogateescape")).digest()
        found = None
        for token in self.tokens:  # compare with every token: time does not tell which one matched
            if hmac.compare_digest(digest, token.sha256):
                found = token
        return found


def hash_token(token: str) -> str:
    """The digest to put in http.tokens for a token (also `correlator incidents hash-token`)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(raw: Mapping[str, Any]) -> TokenAuth:
    """http.tokens: {name: {role: viewer|operator|admin, sha256: <64 hex digits>}}."""
    tokens = []
    for name, spec in raw.items():
        where = f"{raw.where(name)}: " if isinstance(raw, YamlMap) else ""
        if not isinstance(spec, Mapping) or set(spec) != {"role", "sha256"}:
            raise ConfigError(f"{where}'http.tokens.{name}': expected exactly 'role' and 'sha256'")
        role, digest = spec["role"], spec["sha256"]
        if role not in ROLES:
            raise ConfigError(
                f"{where}'http.tokens.{name}.role': expected one of {', '.join(ROLES)}, got {role!r}"
            )
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or any(c not in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise ConfigError(
                f"{where}'http.tokens.{name}.sha256': expected 64 hex digits"
                " (printf %s TOKEN | sha256sum), not the token itself"
            )
        tokens.append(ApiToken(str(name), role, bytes.fromhex(digest)))
    return TokenAuth(tokens)


def load_tokens(tokens: Mapping[str, Any], tokens_file: Path | None) -> TokenAuth:
    """http.tokens plus the same mapping read from http.tokens_file (a mounted secret), if set."""
    auth = parse_tokens(tokens)
    if tokens_file is None:
        return auth
    try:
        loaded = yamlfile.load(tokens_file)
    except OSError as e:
        raise ConfigError(f"'http.tokens_file': cannot read {tokens_file}: {e.strerror}") from None
    except yamlfile.YamlError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(loaded, Mapping) or not loaded:
        raise ConfigError(f"{tokens_file}:1:1: expected a mapping of token name to {{role, sha256}}")
    both = sorted(set(map(str, loaded)) & set(map(str, tokens)))
    if both:
        raise ConfigError(f"'http.tokens_file': {', '.join(both)} also in http.tokens; name each token once")
    return TokenAuth(auth.tokens + parse_tokens(loaded).tokens)


def auth_middleware(auth: TokenAuth) -> Middleware:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        op = operation_of(request.match_info.handler)
        needed = op.role if op is not None else None
        if needed not in ROLES:
            return await handler(request)
        if not auth.enabled:
            request[ACTOR] = ANONYMOUS
            return await handler(request)
        header = request.headers.get("Authorization")
        token = auth.identify(header)
        if token is None:
            reason = "missing" if not header else "unknown"
            AUTH_FAILURES.labels(reason).inc()
            raise web.HTTPUnauthorized(
                reason=f"{reason} API token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="correlator"'},
            )
        assert needed is not None
        if ROLES.index(token.role) < ROLES.index(needed):
            AUTH_FAILURES.labels("forbidden").inc()
            raise web.HTTPForbidden(reason=f"token '{token.name}' has role {token.role}; this needs {needed}")
        request[ACTOR] = token.name
        return await handler(request)

    return check_token
