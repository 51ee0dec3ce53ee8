"""Helpers for the level-2 specifications: build events at given times and run them through a stage."""

from __future__ import annotations

from typing import Any

from correlator.clock import Clock
from correlator.correlation.core import Engine, KeyFn
from correlator.correlation.stage import Correlate
from correlator.event import Event, Severity
from correlator.pipeline import Pipeline, StageContext
from correlator.responses import Response
from correlator.rules.fields import compile_field
from correlator.rules.matchers import Matcher, compile_matcher


def E(
    t: float, type_: str, host: str = "r1", severity: str = "major", resource: str = "", **attrs: Any
) -> Event:
    return Event(
        f"{type_}@{host}/{resource}@{t:g}", t, t, "test", host, type_, Severity(severity), resource, "", attrs
    )


def m(**spec: Any) -> Matcher:
    return compile_matcher(spec)


def by(*paths: str) -> KeyFn:
    getters = [compile_field(p) for p in paths]
    return lambda ev: tuple(g(ev) for g in getters)


class Run:
    """A correlate stage on a virtual clock: `feed` plays events (replay mode), `advance` moves time alone."""

    def __init__(self, *engines: Engine, start: float = 0.0, **stage_args: Any) -> None:
        self.stage = Correlate(list(engines), **stage_args)
        self.pipeline = Pipeline([self.stage])
        self.clock = Clock(start)
        self.responses: list[Response] = []

    async def feed(self, *events: Event) -> list[Event]:
        ctx = StageContext(self.clock, live=False)
        out = await self.pipeline.run(list(events), ctx)
        self.responses.extend(ctx.responses)
        return out

    async def advance(self, t: float) -> list[Event]:
        ctx = StageContext(self.clock, live=False)
        self.stage.bind(self.clock)
        self.clock.advance_to(t)
        out = await self.pipeline.flush(ctx)
        self.responses.extend(ctx.responses)
        return out

    def take_responses(self) -> list[Response]:
        r = self.responses
        self.responses = []
        return r


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def generated(events: list[Event]) -> list[Event]:
    return [e for e in events if e.source == "correlator"]
