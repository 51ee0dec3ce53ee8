"""Requests that are not valid HTTP: answered in the JSON error format, counted, logged sparingly.

aiohttp's parser refuses them before any route or middleware runs and its request handler answers
with a plain-text 400 and an ERROR log line with a traceback apiece, so a hostile client could fill
the log with one malformed line after another. `JsonErrorHandler` (the request handler the daemon's
server builds for every connection, correlator/api/connections.py) answers them instead.

A body is parsed only as a route reads it: one whose framing breaks or that does not decode by its
Content-Encoding reaches the route as aiohttp's RequestPayloadError, which `refuse_body` (called by
the error middleware, correlator/api/app.py) answers and counts the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import http_exceptions as hx
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.metrics import Counter

from correlator.api.common import dumps_response
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

# The `reason` label: a fixed set, whatever the client sends.
BAD_METHOD = "bad_method"  # not HTTP at all (often TLS spoken to the plain-HTTP port)
BAD_REQUEST_LINE = "bad_request_line"  # a broken request line, version or target
TOO_LONG = "too_long"  # a request line or header beyond the parser's limits
BAD_HEADER = "bad_header"  # a control byte or an invalid character in a header
BAD_FRAMING = "bad_framing"  # a bad Content-Length, Transfer-Encoding or chunk
BAD_ENCODING = "bad_encoding"  # a body that does not decode by its Content-Encoding
BAD_REQUEST = "bad_request"  # anything else the parser refuses
REASONS = (BAD_METHOD, BAD_REQUEST_LINE, TOO_LONG, BAD_HEADER, BAD_FRAMING, BAD_ENCODING, BAD_REQUEST)

BAD_HTTP = Counter(
    "correlator_http_invalid_requests_total",
    "Requests refused by the HTTP parser (not valid HTTP, the body included), by reason",
    ["reason"],
)
for _reason in REASONS:
    BAD_HTTP.labels(_reason)

INTERNAL = "internal error; the daemon logged the details"
# BadHttpMethod is newer than aiohttp 3.10.0; before it, a bad method is a BadStatusLine.
_BAD_METHOD: tuple[type[BaseException], ...] = tuple(
    c for c in (getattr(hx, "BadHttpMethod", None),) if isinstance(c, type)
)
_FRAMING_WORDS = ("content-length", "content length", "transfer-encoding", "transfer encoding", "chunk")


def reason_of(exc: BaseException | None) -> str:
    """The bounded reason of a parser error. The C parser raises the generic BadHttpMessage for
    most errors, so its message (llhttp's fixed description) decides among the generic ones; the
    pure-Python parser (AIOHTTP_NO_EXTENSIONS) gives the same reasons."""
    if isinstance(exc, _BAD_METHOD):
        return BAD_METHOD
    if isinstance(exc, hx.BadStatusLine | hx.InvalidURLError):
        return BAD_REQUEST_LINE
    if isinstance(exc, hx.LineTooLong):
        return TOO_LONG
    if isinstance(exc, hx.ContentEncodingError):  # raised on the body, or on its end (a cut deflate)
        return BAD_ENCODING
    what = _summary(exc).lower()
    # Before InvalidHeader: the pure-Python parser reports a bad Content-Length as a bad header.
    if isinstance(exc, hx.ContentLengthError | hx.TransferEncodingError) or any(
        w in what for w in _FRAMING_WORDS
    ):
        return BAD_FRAMING
    if isinstance(exc, hx.InvalidHeader) or "header" in what:
        return BAD_HEADER
    if "url" in what or "method" in what or "version" in what:
        return BAD_REQUEST_LINE
    return BAD_REQUEST


class JsonErrorHandler(RequestHandler):
    """aiohttp's request handler, with `handle_error` (its one hook for errors raised outside any
    route: the parser's 400, a handler's escaped exception, a timeout) answering in JSON."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, hx.HttpProcessingError) or status >= 500:
            # Not the parser: aiohttp logs it with its traceback (a bug worth reading); the answer
            # is still the documented format.
            plain = super().handle_error(request, status, exc, message)
            error = INTERNAL if plain.status == 500 else plain.reason or "error"
            return _closing(dumps_response(plain.status, {"error": error}))
        if request.writer.output_size > 0:  # a response is half sent: only closing is left
            raise ConnectionError("response already started; cannot answer the parse error")
        reason = reason_of(exc)
        BAD_HTTP.labels(reason).inc()
        # A fixed text: the parser's message may quote the bytes received (an oversized
        # Authorization or Cookie header holds a token or a session id).
        what = _describe(_TEXTS, reason, exc)
        _limited.warning(
            "invalid-http", "not valid HTTP from %s, refused (%s): %s", _peer(self), reason, what
        )
        return _closing(dumps_response(400, {"error": f"not valid HTTP: {what}", "reason": reason}))


def refuse_body(request: web.BaseRequest, exc: BaseException) -> web.Response:
    """The answer to a body aiohttp could not read (RequestPayloadError): the client's fault, never
    the route's. The parser's message may repeat bytes of the body: the answer and the log do not."""
    reason = reason_of(exc.__cause__ or exc)  # aiohttp keeps the parser's own error as the cause
    BAD_HTTP.labels(reason).inc()
    _limited.warning(
        "invalid-http",
        "not valid HTTP from %s, refused (%s): the body of %s %s",
        _peer(request.protocol),
        reason,
        request.method,
        request.rel_url.path[:200],
    )
    # Nothing more of the body is parsed after the error; without an end, aiohttp's lingering close
    # would read it again after the answer and log the same error with a traceback.
    request.content.feed_eof()
    what = _describe(_BODY_TEXTS, reason, exc.__cause__ or exc)
    return _closing(dumps_response(400, {"error": f"not valid HTTP: {what}", "reason": reason}))


# What the log and the answer say for each reason, never the parser's message.
_TEXTS = {
    BAD_METHOD: "not an HTTP method (TLS or another protocol spoken to the plain-HTTP port?)",
    BAD_REQUEST_LINE: "a malformed request line, target or HTTP version",
    TOO_LONG: "a request line or header beyond the parser's limit",
    BAD_HEADER: "a header with a control byte or an invalid character",
    BAD_FRAMING: "a bad Content-Length, Transfer-Encoding or chunk",
    BAD_ENCODING: "a body that does not decode by its Content-Encoding",
    BAD_REQUEST: "a request the HTTP parser refuses",
}
_BODY_TEXTS = {
    **_TEXTS,
    BAD_FRAMING: "the body does not match its Content-Length or chunked framing",
    TOO_LONG: "a chunk line of the body beyond the parser's limit",
}


def _describe(texts: dict[str, str], reason: str, exc: BaseException | None) -> str:
    # LineTooLong keeps its limit as its second argument (the first is the line it quotes).
    limit = exc.args[1] if isinstance(exc, hx.LineTooLong) and len(exc.args) > 1 else None
    return f"{texts[reason]} ({limit} bytes)" if isinstance(limit, int) else texts[reason]


def _closing(resp: web.Response) -> web.Response:
    resp.force_close()  # the parser's state is unknown after an error: nothing more is read
    return resp


def _summary(exc: BaseException | None) -> str:
    """The first line of the parser's message, cut, to classify it by: it may quote bytes received,
    so it is neither logged nor answered."""
    text = getattr(exc, "message", None) or str(exc or "") or "bad request"
    first = str(text).strip().splitlines()[0] if str(text).strip() else "bad request"
    return first.rstrip(":")[:120]


def _peer(handler: Any) -> str:
    try:
        peer = handler.transport.get_extra_info("peername") if handler.transport else None
    except Exception:  # a transport already closed: the address is only for the log
        peer = None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
