"""The filter stage in the pipeline: events removed, folds handed to the store through ctx.updates
and the repeats folded away through ctx.folded."""

from __future__ import annotations

from correlator.clock import Clock
from correlator.config import Config
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
from correlator.rules import ruleset
from correlator.rules.reload import RulesHolder
from tests.unit.rules.helpers import ev


async def test_folds_across_batches_reach_ctx_updates(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {name: d, match: {type: down}, dedup: 5m}\n  - {name: drop, match: {type: noise}, drop: true}\n"
    )
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    pipeline = build_pipeline(Config(rules_dir=tmp_path), holder)
    assert "filter" in [s.name for s in pipeline.stages]
    clock = Clock(0.0)
    first = ev("sw1", "down", time=10.0)
    ctx1 = StageContext(clock, live=False)
    out1 = await pipeline.run([first, ev("sw1", "noise", time=11.0)], ctx1)
    assert out1 == [first] and ctx1.updates == [] and ctx1.folded == []
    ctx2 = StageContext(clock, live=False)
    repeats = [ev("sw1", "down", time=20.0), ev("sw1", "down", time=30.0)]
    out2 = await pipeline.run(list(repeats), ctx2)
    assert out2 == []
    assert ctx2.updates == [first, first] and (first.count, first.last_seen) == (3, 30.0)
    assert ctx2.folded == repeats


async def test_the_repeats_folded_reach_ctx_folded_when_the_conditions_table_is_full_too(
    tmp_path, monkeypatch
):
    """Near MAX_KEYS conditions the stage runs event by event (RuleSet.process), bounded."""
    monkeypatch.setattr(ruleset, "MAX_KEYS", 0)
    (tmp_path / "r.yaml").write_text("rules:\n  - {name: d, match: {type: down}, dedup: 5m}\n")
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    pipeline = build_pipeline(Config(rules_dir=tmp_path), holder)
    first, repeat, other = (
        ev("sw1", "down", time=10.0),
        ev("sw1", "down", time=20.0),
        ev("sw2", "down", time=20.0),
    )
    ctx = StageContext(Clock(0.0), live=False)
    assert await pipeline.run([first, repeat, other], ctx) == [first, other]
    assert ctx.updates == [first] and ctx.folded == [repeat]


async def test_no_rules_passes_everything(tmp_path):
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    pipeline = build_pipeline(Config(rules_dir=tmp_path), holder)
    events = [ev(), ev()]
    assert await pipeline.run(list(events), StageContext(Clock(0.0), live=False)) == events
