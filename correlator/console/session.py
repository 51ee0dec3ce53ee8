"""Console sign-in: server-side sessions behind an opaque cookie, and CSRF tokens bound to them.

The API token is checked once at sign-in (TokenAuth.identify, as for the API) and never kept in the
browser: the cookie holds a random session id. Every form carries a CSRF token derived from that id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.metrics import Counter

from correlator.api.auth import ANONYMOUS, TokenAuth
from correlator.api.openapi import ROLES

COOKIE = "correlator_session"
IDLE = 8 * 3600.0  # a session unused for a shift is gone
LIFETIME = 24 * 3600.0  # and none that may act outlives a day, used or not
VIEWER_LIFETIME = 7 * 86400.0  # read-only sessions (wall screens) a week: nobody re-types a token daily
MAX_SESSIONS = 10_000  # only valid tokens create sessions; the cap bounds memory anyway

REFUSED = Counter(
    "correlator_console_refusals_total",
    "Web console requests refused (signin: wrong token, csrf: missing or wrong CSRF token, "
    "forbidden: role too low, unsigned: no session, invalid: bad form input)",
    ["reason"],
)


@dataclass(slots=True)
class Session:
    sid: str
    name: str  # the token's name: the actor in the audit
    role: str
    created: float
    seen: float


@dataclass(frozen=True, slots=True)
class Who:
    """The person behind a request: name, role, and the id their CSRF token is bound to."""

    name: str
    role: str
    sid: str
    signed_in: bool  # False when the API is open (no tokens) and nobody needs to sign in

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Sessions:
    def __init__(self, auth: TokenAuth, now: Callable[[], float] = time.monotonic) -> None:
        self.auth = auth
        self.now = now
        self._secret = secrets.token_bytes(32)  # per process: a restart signs everybody out
        self._by_sid: dict[str, Session] = {}

    @property
    def open(self) -> bool:
        """No API token configured: the API is open, and so is the console (docs/console.md)."""
        return not self.auth.enabled

    def sign_in(self, token_text: str) -> Session | None:
        token = self.auth.identify(f"Bearer {token_text}")
        if token is None:
            return None
        self._expire()
        if len(self._by_sid) >= MAX_SESSIONS:
            oldest = min(self._by_sid.values(), key=lambda s: s.seen)
            del self._by_sid[oldest.sid]
        now = self.now()
        s = Session(new_sid(), token.name, token.role, now, now)
        self._by_sid[s.sid] = s
        return s

    def sign_out(self, sid: str) -> None:
        self._by_sid.pop(sid, None)

    def who(self, request: web.Request) -> Who | None:
        sid = cookie_sid(request)
        if sid is not None:
            s = self._by_sid.get(sid)
            now = self.now()
            if s is not None and _expired(s, now):
                del self._by_sid[sid]
                s = None
            if s is not None:
                s.seen = now
                return Who(s.name, s.role, sid, True)
        if self.open:
            return Who(ANONYMOUS, "admin", sid or "", False)
        return None

    def csrf(self, sid: str) -> str:
        return hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str, value: object) -> bool:
        # compare_digest raises on non-ASCII text: a forged token is a 403, never a 500
        return (
            bool(sid)
            and isinstance(value, str)
            and value.isascii()
            and hmac.compare_digest(self.csrf(sid), value)
        )

    def _expire(self) -> None:
        now = self.now()
        for sid in [k for k, s in self._by_sid.items() if _expired(s, now)]:
            del self._by_sid[sid]


def lifetime(role: str) -> float:
    return VIEWER_LIFETIME if role == "viewer" else LIFETIME


def _expired(s: Session, now: float) -> bool:
    return now - s.seen > IDLE or now - s.created > lifetime(s.role)


def new_sid() -> str:
    return secrets.token_urlsafe(32)


def cookie_sid(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE)
    if value is None or not 20 <= len(value) <= 64 or not all(c.isalnum() or c in "-_" for c in value):
        return None
    return value


def set_cookie(request: web.Request, response: web.StreamResponse, sid: str, role: str = "") -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over TLS.
    Without a role (before sign-in, or no tokens) the cookie lasts as long as the browser."""
    response.set_cookie(
        COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=over_tls(request),
        max_age=int(lifetime(role)) if role else None,
    )


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", secure=over_tls(request), httponly=True, samesite="Strict")


def over_tls(request: web.Request) -> bool:
    """TLS here, or at a reverse proxy that says so. Trusting the header can only make the cookie
    stricter (a Secure cookie is never sent over plain HTTP), never leak it."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
