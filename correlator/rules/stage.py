"""The level-1 pipeline stage ("filter"): runs the current rule set's filter rules on every event.

It reads the holder's rule set once per batch, so a reload in between never shows a batch half of
one set and half of another. Folded duplicates go to `ctx.updates` for the store, the repeats folded
away to `ctx.folded`.
"""

from __future__ import annotations

from correlator.event import Event
from correlator.pipeline import StageContext
from correlator.rules.reload import RulesHolder


class FilterStage:
    name = "filter"

    def __init__(self, rules: RulesHolder) -> None:
        self._rules = rules

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        ruleset = self._rules.current
        if not ruleset.filters:
            return events
        return ruleset.run(events, ctx.updates, ctx.folded)
