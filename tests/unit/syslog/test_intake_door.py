"""Syslog events pass the same door as every collector's (correlator/door.py): a refused one is
counted in the syslog drop metric under the door's reason and never reaches the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from collectors.syslog.intake import DROPPED, Intake
from collectors.syslog.settings import parse
from correlator import door
from correlator.event import iso
from correlator.metrics import EVENTS_REJECTED as REJECTED


@pytest.fixture
def strict_past() -> Iterator[None]:
    door.configure(door.TimePolicy(max_past=60.0))  # header times within the syslog skew, older than this
    try:
        yield
    finally:
        door.configure(door.TimePolicy())


def frame(seconds_ago: float, now: float) -> bytes:
    return f"<11>1 {iso(now - seconds_ago)} sw1 app - - - interface down".encode()


def test_an_event_the_door_refuses_is_dropped_and_counted(strict_past: None) -> None:
    intake = Intake(parse({}))
    now = time.time()
    before = DROPPED.labels("udp", door.BAD_TIME)._value.get()
    assert intake.event(frame(1800, now), "127.0.0.1", now, "udp") is None
    assert DROPPED.labels("udp", door.BAD_TIME)._value.get() == before + 1
    ev = intake.event(frame(10, now), "127.0.0.1", now, "udp")
    assert ev is not None and ev.host == "sw1"


def years_ahead(now: float, years: int) -> list[bytes]:
    """One RFC 5424 and one RFC 3164 (NX-OS, with a year) message stamped `years` ahead."""
    t = time.gmtime(now)
    year = t.tm_year + years
    return [
        f"<11>1 {year}-06-01T00:00:00.000Z sw1 app - LINK_DOWN - interface down".encode(),
        f"<187>{year} Jun  1 00:00:00 nx1 %ETHPORT-5-IF_DOWN_LINK_FAILURE: Interface Ethernet1/1 is down".encode(),
    ]


@pytest.mark.parametrize("years", [3, 7973])  # a clock off by years; the year 9999
def test_a_header_time_years_ahead_never_passes_the_doors_time_policy(years: int) -> None:
    # Within the default max_clock_skew (1 h, less than ingest.max_future's 1 d): the receive time
    # is the event time and the header's is kept as text.
    intake = Intake(parse({}))
    now = time.time()
    for message in years_ahead(now, years):
        ev = intake.event(message, "127.0.0.1", now, "tcp")
        assert ev is not None
        assert ev.time == now <= ev.received + door.MAX_FUTURE
        assert ev.attributes["device_time"].startswith(str(time.gmtime(now).tm_year + years))


def test_a_skew_wider_than_max_future_is_refused_at_the_door_not_trusted() -> None:
    door.configure(door.TimePolicy(max_future=3600.0))
    try:
        intake = Intake(parse({"max_clock_skew": "3650d"}))
        now = time.time()
        before = DROPPED.labels("tcp", door.BAD_TIME)._value.get()
        rejected = REJECTED.labels("syslog", door.BAD_TIME)._value.get()
        for message in years_ahead(now, 3):
            assert intake.event(message, "127.0.0.1", now, "tcp") is None
        assert DROPPED.labels("tcp", door.BAD_TIME)._value.get() == before + 2
        assert REJECTED.labels("syslog", door.BAD_TIME)._value.get() == rejected + 2
        soon = f"<11>1 {iso(now + 1800)} sw1 app - - - within max_future".encode()
        ev = intake.event(soon, "127.0.0.1", now, "tcp")
        assert ev is not None and ev.time == pytest.approx(now + 1800, abs=0.001)
    finally:
        door.configure(door.TimePolicy())
