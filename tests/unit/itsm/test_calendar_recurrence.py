"""Calendar recurrence: RFC 5545 RRULEs (nth weekday, intervals, EXDATE) and one-off windows, in
local time of a named zone across daylight saving, with file:line:column errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.changes.calendar import parse_calendar
from correlator.changes.model import State
from correlator.changes.recurrence import parse_rule
from correlator.errors import ConfigError
from correlator.yamlfile import YamlError, loads
from tests.unit.itsm.conftest import HOUR, T0

PARIS = ZoneInfo("Europe/Paris")
DAY = 86400.0


def window(text: str):
    [w] = parse_calendar(loads("windows:\n" + text, "calendar.yaml"), "calendar.yaml").windows
    return w


def ts(s: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=tz).timestamp()


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M")


SECOND_TUESDAY = """\
  - name: patch-tuesday
    rrule: FREQ=MONTHLY;BYDAY=2TU
    start: "02:00"
    end: "05:00"
    timezone: Europe/Paris
    cis: [srv1]
"""


def test_second_tuesday_of_every_month_at_two_local_time_across_daylight_saving():
    w = window(SECOND_TUESDAY)
    starts = [utc(s) for s, _ in w.occurrences(ts("2027-01-01T00:00"), 200 * DAY)]
    # 02:00 Paris is 01:00Z in winter (CET) and 00:00Z in summer (CEST, from 28 March 2027).
    assert starts == [
        "2027-01-12T01:00", "2027-02-09T01:00", "2027-03-09T01:00", "2027-04-13T00:00",
        "2027-05-11T00:00", "2027-06-08T00:00", "2027-07-13T00:00",
    ]  # fmt: skip
    [(s, e)] = w.occurrences(ts("2027-04-13T04:59"), 0)  # still open one minute before its end
    assert (s, e - s) == (ts("2027-04-13T02:00"), 3 * HOUR)
    assert w.occurrences(ts("2027-04-13T05:00"), 20 * DAY) == []  # over; the next is in May
    assert w.next_occurrence(ts("2027-04-13T05:00")) == (ts("2027-05-11T02:00"), ts("2027-05-11T05:00"))
    assert w.occurs_at(ts("2027-03-09T02:00"), ts("2027-03-09T05:00"))
    assert not w.occurs_at(ts("2027-03-16T02:00"), ts("2027-03-16T05:00"))


def test_exdates_skip_one_occurrence_and_nothing_else():
    w = window(SECOND_TUESDAY + "    exdates: [2027-04-13, '2027-06-08']\n")
    starts = [utc(s) for s, _ in w.occurrences(ts("2027-03-01T00:00"), 120 * DAY)]
    assert starts == ["2027-03-09T01:00", "2027-05-11T00:00"]
    assert w.next_occurrence(ts("2027-03-10T00:00"))[0] == ts("2027-05-11T02:00")


def test_exdates_also_apply_to_weekly_days_windows():
    w = window(
        "  - {name: sun, days: [sun], start: '02:00', end: '04:00', cis: [a], exdates: [2027-01-24]}\n"
    )
    z = ZoneInfo("UTC")
    starts = [utc(s) for s, _ in w.occurrences(ts("2027-01-16T00:00", z), 16 * DAY)]
    assert starts == ["2027-01-17T02:00", "2027-01-31T02:00"]


def test_an_interval_counts_from_the_from_date():
    w = window(
        "  - {name: fortnight, rrule: 'FREQ=WEEKLY;INTERVAL=2;BYDAY=SA', from: 2027-01-02,"
        " start: '22:00', end: '02:00', cis: [a]}\n"
    )
    z = ZoneInfo("UTC")
    starts = [utc(s) for s, _ in w.occurrences(ts("2026-12-20T00:00", z), 42 * DAY)]
    assert starts == ["2027-01-02T22:00", "2027-01-16T22:00", "2027-01-30T22:00"]  # nothing before 'from'
    [(s, e)] = w.occurrences(ts("2027-01-17T01:00", z), 0)  # crosses midnight, like 'days' windows
    assert e - s == 4 * HOUR


def test_a_one_off_window_occurs_once_and_follows_the_zone_across_a_dst_change():
    w = window(
        "  - {name: dc-move, start: '2027-03-27 22:00', end: '2027-03-28 06:00', timezone: Europe/Paris,"
        " cis: [core1]}\n"
    )
    [(s, e)] = w.occurrences(ts("2027-03-20T00:00"), 30 * DAY)
    assert (utc(s), utc(e)) == ("2027-03-27T21:00", "2027-03-28T04:00")  # 7 h: clocks go forward at 02:00
    assert w.occurrences(ts("2027-03-28T06:00"), 400 * DAY) == []
    assert w.next_occurrence(ts("2027-03-28T06:00")) is None
    assert w.next_occurrence(ts("2027-01-01T00:00")) == (s, e)


@settings(max_examples=60, deadline=None)
@given(
    now=st.floats(min_value=T0, max_value=T0 + 3 * 365 * DAY),
    rule=st.sampled_from(
        [
            "FREQ=MONTHLY;BYDAY=2TU",
            "FREQ=MONTHLY;BYDAY=-1FR",
            "FREQ=YEARLY;BYMONTH=12;BYDAY=1SU",
            "FREQ=MONTHLY;BYMONTHDAY=15,-1",
            "FREQ=WEEKLY;BYDAY=MO,TH",
            "FREQ=DAILY",
        ]
    ),
)
def test_occurrences_are_those_counted_from_a_distant_start(now, rule):
    """Rules that do not depend on their first date are counted from just before the span asked
    for; the result is the same as RFC 5545 counting from years earlier."""
    rec = parse_rule(rule, time(2, 30), None, frozenset())
    lo = datetime.fromtimestamp(now, PARIS).replace(tzinfo=None)
    hi = lo + timedelta(days=40)
    reference = rrulestr(rule, dtstart=datetime(2020, 1, 1, 2, 30)).between(lo, hi, inc=True)
    assert rec.starts(lo, hi) == reference


async def test_an_rrule_window_becomes_an_approved_change_record(make_world):
    # T0 is Friday 2027-01-15 08:00Z; the third Saturday of January 2027 is the 16th.
    w = await make_world(
        "windows:\n  - {name: sat3, rrule: 'FREQ=MONTHLY;BYDAY=3SA', start: '01:00', end: '03:00', cis: [db1]}\n"
    )
    await w.feed(T0 + HOUR)
    [c] = await w.changes.query((), 10, None)
    start = ts("2027-01-16T01:00", ZoneInfo("UTC"))
    assert (c.state, c.start, c.end, c.calendar) == (
        State.APPROVED,
        start,
        start + 2 * HOUR,
        f"sat3@{start:.0f}",
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("  - name: w\n    rrule: FREQ=MONTHLY;BYDAY=2XX\n    start: '02:00'\n    end: '04:00'\n    cis: [a]\n",
         "calendar.yaml:3:12: 'rrule': invalid RRULE: invalid 'BYDAY': 2XX"),
        ("  - name: w\n    rrule: FREQ=WEEKLY;INTERVAL=2;BYDAY=SA\n    start: '02:00'\n    end: '04:00'\n    cis: [a]\n",
         "calendar.yaml:3:12: 'rrule': this RRULE counts from its first date"),
        ("  - {name: w, rrule: 'FREQ=MONTHLY', start: '02:00', end: '04:00', cis: [a]}\n",
         "give 'from', the date it starts"),
        ("  - {name: w, rrule: 'FREQ=HOURLY', start: '02:00', end: '04:00', cis: [a]}\n",
         "FREQ must be one of YEARLY, MONTHLY, WEEKLY, DAILY, got 'HOURLY'"),
        ("  - {name: w, rrule: 'FREQ=DAILY;BYHOUR=3', start: '02:00', end: '04:00', cis: [a]}\n",
         "unsupported RRULE part 'BYHOUR': the time of day comes from 'start'"),
        ("  - {name: w, rrule: 'FREQ=DAILY;UNTIL=20271231T000000Z', start: '02:00', end: '04:00', cis: [a]}\n",
         "UNTIL is a local date or date-time without 'Z'"),
        ("  - {name: w, rrule: 'FREQ=DAILY\nEXDATE:20270101T020000', start: '02:00', end: '04:00', cis: [a]}\n",
         "put EXDATEs in 'exdates'"),
        ("  - {name: w, days: sun, rrule: 'FREQ=DAILY', start: '02:00', end: '04:00', cis: [a]}\n",
         "calendar.yaml:2:26: a window has 'days' or 'rrule', not both"),
        ("  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a], exdates: [2027-02-30]}\n",
         "calendar.yaml:2:76: invalid date '2027-02-30'"),
        ("  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a], exdates: [13/04/2027]}\n",
         "calendar.yaml:2:76: 'exdates' must be a date like 2027-04-13"),
        ("  - {name: w, days: sun, from: 2027-01-01, start: '02:00', end: '04:00', cis: [a]}\n",
         "'from' goes with 'rrule'"),
        ("  - {name: w, start: '02:00', end: '04:00', cis: [a]}\n",
         "calendar.yaml:2:5: a window needs 'days' or 'rrule' to repeat, or dated 'start' and 'end'"),
        ("  - {name: w, start: '2027-03-14 22:00', end: '2027-03-14 21:00', cis: [a]}\n",
         "'end' must be after 'start' (2027-03-14 22:00)"),
        ("  - {name: w, start: '2027-03-14 22:00', end: 'tomorrow morning', cis: [a]}\n",
         "'end' must be a time of day like '02:00' (with 'days' or 'rrule') or, for a one-off window"),
    ],
)  # fmt: skip
def test_recurrence_errors_name_the_place_and_what_was_expected(text, error):
    with pytest.raises((ConfigError, YamlError)) as e:
        window(text)
    assert error in str(e.value)


def test_the_weekly_syntax_is_an_rrule_underneath():
    w = window("  - {name: w, days: [sat, sun], start: '02:00', end: '04:00', cis: [a]}\n")
    assert w.recurrence.rule == "FREQ=WEEKLY;BYDAY=SA,SU" and w.recurrence.anchor is None
    assert window("  - {name: w, days: daily, start: '02:00', end: '04:00', cis: [a]}\n").recurrence.rule == (
        "FREQ=DAILY"
    )
    assert date(2027, 1, 16).weekday() == 5  # the Saturday the test above relies on
