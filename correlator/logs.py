"""Logging set-up (text or JSON lines) and a rate limiter so bad input cannot flood the log."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED:
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is one line per request: useless at ingest rates.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class RateLimitedLog:
    """Logs at most `burst` messages per `interval` seconds per key, then a count of what it held back."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0, burst: int = 5) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._windows: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.WARNING, key, msg, args)

    def error(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.ERROR, key, msg, args)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...]) -> None:
        now = time.monotonic()
        start, n = self._windows.get(key, (now, 0))
        if now - start >= self._interval:
            if n > self._burst:
                self._logger.log(level, "%s: %d more similar messages suppressed", key, n - self._burst)
            start, n = now, 0
        n += 1
        self._windows[key] = (start, n)
        if n <= self._burst:
            self._logger.log(level, msg, *args)
