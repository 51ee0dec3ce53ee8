"""When a calendar window opens: RFC 5545 recurrence (RRULE, EXDATE) through python-dateutil.

calendar.py turns every window (weekly days, daily, an RRULE or a one-off date) into a Recurrence;
Window.occurrences asks it for the local start times in a span. Times are naive local wall-clock
times of the window's zone, so "02:00 every second Tuesday" stays 02:00 across daylight saving.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dateutil.rrule import rrule, rruleset


FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")
PARTS = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH",
    "BYSETPOS", "WKST",
}  # fmt: skip
# Without one of these a weekly, monthly or yearly rule takes its day from DTSTART.
_DAY_PARTS = {"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"}
_LOOKAHEAD = 1000  # occurrences looked at for the next one (an EXDATE list never skips more)


class RecurrenceError(ValueError):
    """The RRULE text is not one the calendar takes; the message says why."""


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RRULE with its first date (`anchor`, RFC 5545 DTSTART) and the dates it skips (EXDATE)."""

    rule: str  # canonical RRULE value, e.g. FREQ=MONTHLY;BYDAY=2TU
    at: time  # local time of day every occurrence starts
    anchor: date | None = None  # None: the rule does not depend on where it starts counting
    exdates: frozenset[date] = frozenset()
    _freq: str = field(default="", compare=False, repr=False)
    _fixed: rrule | rruleset | None = field(default=None, compare=False, repr=False)
    # The last anchor-free rule built, by its start date: the daemon asks on every batch, and the
    # start moves once a day (weekly, daily) or once a month at most.
    _last: dict[date, rrule | rruleset] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = _parts(self.rule)
        object.__setattr__(self, "_freq", parts["FREQ"])
        if needs_anchor(parts):
            if self.anchor is None:
                raise RecurrenceError(f"{self.rule} needs the date it counts from")
            # Counted from the anchor: one rule object whose cache keeps later calls cheap.
            fixed = _rrulestr(self.rule, datetime.combine(self.anchor, self.at), cache=True)
            object.__setattr__(self, "_fixed", fixed)

    def starts(self, after: datetime, before: datetime) -> list[datetime]:
        """Local start times in [after, before], EXDATEs left out."""
        rule = self._rule(after)
        return [s for s in rule.between(after, before, inc=True) if s.date() not in self.exdates]

    def following(self, after: datetime) -> Iterator[datetime]:
        """Local start times from `after` on (EXDATEs left out), at most a bounded number looked at."""
        rule = self._rule(after)
        for i, s in enumerate(rule.xafter(after, inc=True)):
            if i >= _LOOKAHEAD:
                return
            if s.date() not in self.exdates:
                yield s

    def _rule(self, after: datetime) -> rrule | rruleset:
        if self._fixed is not None:
            return self._fixed
        # Anchor-free rules start counting just before the span asked for: the same occurrences
        # as counting from any earlier date, without iterating over the years in between.
        start = _period_start(self._freq, after.date())
        if self.anchor is not None:
            start = max(start, self.anchor)
        rule = self._last.get(start)
        if rule is None:
            rule = _rrulestr(self.rule, datetime.combine(start, self.at), cache=True)
            self._last.clear()
            self._last[start] = rule
        return rule


def weekly(days: frozenset[int], at: time, exdates: frozenset[date] = frozenset()) -> Recurrence:
    """The calendar's `days:` syntax (0 = Monday) as an RRULE."""
    if len(days) == 7:
        return Recurrence("FREQ=DAILY", at, exdates=exdates)
    names = ",".join(("MO", "TU", "WE", "TH", "FR", "SA", "SU")[d] for d in sorted(days))
    return Recurrence(f"FREQ=WEEKLY;BYDAY={names}", at, exdates=exdates)


def once(start: datetime) -> Recurrence:
    """A one-off window: an RRULE with COUNT=1 from its start."""
    return Recurrence("FREQ=DAILY;COUNT=1", start.time(), start.date())


def parse_rule(text: str, at: time, anchor: date | None, exdates: frozenset[date]) -> Recurrence:
    """Validate an RRULE value (an optional `RRULE:` prefix is dropped) -> Recurrence."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "\n" in body or ":" in body:
        raise RecurrenceError("one RRULE value like 'FREQ=MONTHLY;BYDAY=2TU'; put EXDATEs in 'exdates'")
    parts = _parts(body)
    unknown = sorted(set(parts) - PARTS)
    if unknown:
        raise RecurrenceError(
            f"unsupported RRULE part {unknown[0]!r}: the time of day comes from 'start'; "
            f"known: {', '.join(sorted(PARTS))}"
        )
    if parts.get("FREQ") not in FREQUENCIES:
        raise RecurrenceError(f"FREQ must be one of {', '.join(FREQUENCIES)}, got {parts.get('FREQ')!r}")
    if anchor is None and needs_anchor(parts):
        raise RecurrenceError(
            "this RRULE counts from its first date (INTERVAL, COUNT, or no BYDAY/BYMONTHDAY): "
            "give 'from', the date it starts"
        )
    if parts.get("UNTIL", "").endswith("Z"):
        raise RecurrenceError(
            "UNTIL is a local date or date-time without 'Z': the window's times are in its timezone"
        )
    canonical = ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        rule = _rrulestr(canonical, datetime.combine(anchor or date(2000, 1, 1), at))
        next(iter(rule), None)  # some errors (e.g. an impossible BYMONTHDAY) only show when iterating
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise RecurrenceError(f"invalid RRULE: {e}") from None
    return Recurrence(canonical, at, anchor, exdates)


def needs_anchor(parts: dict[str, str]) -> bool:
    """Whether the occurrences depend on where counting starts (RFC 5545 DTSTART)."""
    if "COUNT" in parts or parts.get("INTERVAL", "1") not in ("1", "01"):
        return True
    return parts.get("FREQ") != "DAILY" and not (_DAY_PARTS & parts.keys())


def _parts(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise RecurrenceError(f"{item!r} is not NAME=VALUE (RRULE parts are separated by ';')")
        parts[name.strip().upper()] = value.strip().upper()
    return parts


def _period_start(freq: str, day: date) -> date:
    """The start of the RRULE period holding `day`, a week early for weekly and daily rules."""
    if freq == "YEARLY":
        return day.replace(month=1, day=1)
    if freq == "MONTHLY":
        return day.replace(day=1)
    return day - timedelta(days=7)


def _rrulestr(text: str, dtstart: datetime, cache: bool = False) -> rrule | rruleset:
    # dateutil is imported by the first window: a process without a calendar (replay, rule tests,
    # most daemons) does not load it.
    from dateutil.rrule import rrulestr

    rule: rrule | rruleset = rrulestr(text, dtstart=dtstart, cache=cache)
    return rule
