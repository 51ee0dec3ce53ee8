"""The report's period from what a person gives: `from` and `to` (ISO 8601 or epoch seconds) and/or
`period` (a duration such as 30d), the same for the API's query and the command's options.
"""

from __future__ import annotations

from collections.abc import Mapping

from correlator.config import parse_duration
from correlator.errors import FieldError
from correlator.event import parse_time

DEFAULT_PERIOD = 30 * 86400.0
MAX_PERIOD = 400 * 86400.0  # a yearly review and some margin; bounds the work of one request
KNOWN = ("from", "to", "period")


def parse_period(params: Mapping[str, str | None], now: float) -> tuple[float, float]:
    """(start, end). `to` defaults to now; `from` to `to` minus `period` (default 30 days); all
    three together are refused, as is an empty or too long period."""
    for key in params:
        if key not in KNOWN:
            raise FieldError(key, f"unknown parameter; known: {', '.join(KNOWN)}")
    given = {k: v for k, v in params.items() if v not in (None, "")}
    if len(given) == 3:
        raise FieldError("period", "give from and to, or one of them with period, not all three")
    end = _time(given["to"], "to") if "to" in given else None
    start = _time(given["from"], "from") if "from" in given else None
    span = DEFAULT_PERIOD
    if "period" in given:
        try:
            span = parse_duration(given["period"])
        except ValueError as e:
            raise FieldError("period", str(e)) from None
        if span <= 0:
            raise FieldError("period", "must be longer than 0s")
    if end is None:
        end = start + span if start is not None and "period" in given else now
    if start is None:
        start = end - span
    if start >= end:
        raise FieldError("from", "must be before to")
    if end - start > MAX_PERIOD:
        raise FieldError("period", f"at most {MAX_PERIOD / 86400:g} days")
    return start, end


def _time(raw: str | None, name: str) -> float:
    assert raw is not None
    try:
        return parse_time(float(raw), name)
    except ValueError:
        return parse_time(raw, name)
