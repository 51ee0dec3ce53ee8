"""Pipeline.open/close: stages with persistent state are opened live only, and a failed open closes the rest."""

from __future__ import annotations

import pytest

from correlator.clock import Clock
from correlator.event import Event
from correlator.pipeline import Pipeline, StageContext


class Recorder:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        return events

    async def open(self, clock: Clock) -> None:
        if self.fail:
            raise OSError("disk full")
        self.log.append(f"open {self.name}")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")


class Plain:
    name = "plain"

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        return events


async def test_open_and_close_reach_only_stages_that_have_them():
    log: list[str] = []
    p = Pipeline([Recorder("a", log), Plain(), Recorder("b", log)])
    await p.open(Clock(0.0))
    await p.close()
    assert log == ["open a", "open b", "close a", "close b"]


async def test_a_failed_open_closes_the_stages_already_opened():
    log: list[str] = []
    p = Pipeline([Recorder("a", log), Recorder("b", log, fail=True), Recorder("c", log)])
    with pytest.raises(OSError, match="disk full"):
        await p.open(Clock(0.0))
    assert log == ["open a", "close a"]
