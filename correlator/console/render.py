"""HTML responses of the console: the Jinja2 environment (autoescaped) and the security headers.

Every page goes out with a CSP that allows only this origin's own scripts and styles (no inline
script at all), refuses framing, and is never cached when it holds data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("correlator.console", "templates"),
    autoescape=True,  # every template, whatever its name: event text is attacker-controlled
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def iso_minute(ts: float | str | None) -> str:
    """Epoch seconds or an ISO string as `2026-12-06 21:04:05Z` (UTC, readable, sortable)."""
    if ts is None or ts == "":
        return ""
    if isinstance(ts, str):
        return ts.replace("T", " ").split(".")[0].rstrip("Z") + "Z"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def percent(ratio: float) -> str:
    return "n/a" if ratio != ratio else f"{ratio * 100:.3f}%"  # NaN: nothing observed yet


def duration(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


_env.filters.update(when=iso_minute, percent=percent, duration=duration)


def html(template: str, status: int = 200, **context: Any) -> web.Response:
    body = _env.get_template(template).render(**context)
    resp = web.Response(status=status, text=body, content_type="text/html", charset="utf-8")
    resp.headers.update(SECURITY_HEADERS)
    return resp


def document(body: str, status: int = 200, csp: str = CSP) -> web.Response:
    """A whole HTML document made elsewhere (a report), sent with the console's headers; a
    self-contained document with its own inline styles passes its own `csp`."""
    resp = web.Response(status=status, text=body, content_type="text/html", charset="utf-8")
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Content-Security-Policy"] = csp
    return resp


def redirect(location: str) -> web.Response:
    resp = web.Response(status=303, headers={"Location": location})
    resp.headers.update(SECURITY_HEADERS)
    return resp
