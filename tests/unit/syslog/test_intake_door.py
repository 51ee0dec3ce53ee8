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
