"""The filter stage in the pipeline: events removed, folds handed to the store through ctx.updates."""

from __future__ import annotations

from correlator.clock import Clock
from correlator.config import Config
from correlator.pipeline import StageContext
from correlator.pipeline.assemble import build_pipeline
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
    assert out1 == [first] and ctx1.updates == []
    ctx2 = StageContext(clock, live=False)
    out2 = await pipeline.run([ev("sw1", "down", time=20.0), ev("sw1", "down", time=30.0)], ctx2)
    assert out2 == []
    assert ctx2.updates == [first, first] and (first.count, first.last_seen) == (3, 30.0)


async def test_no_rules_passes_everything(tmp_path):
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    pipeline = build_pipeline(Config(rules_dir=tmp_path), holder)
    events = [ev(), ev()]
    assert await pipeline.run(list(events), StageContext(Clock(0.0), live=False)) == events
