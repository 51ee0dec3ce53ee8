"""Replay of a mixed recording through the shipped-style level-2 rules gives identical output every
time and whatever the batch size: timers fire between events, at event time."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from correlator import recording as recording_mod
from correlator import replay as replay_mod
from correlator.config import Config
from correlator.pipeline.assemble import build_pipeline

RULES = """
rules:
  - name: pair
    kind: pair
    match: {type: down}
    close: {type: up}
    group_by: [host]
    within: 30s
    on_timeout: [{incident: {action: open}}]
  - name: storm
    kind: threshold
    match: {type: auth}
    count: 5
    within: 1m
    on_fire: [{emit: {type: auth.storm}}]
  - name: hb
    kind: absence
    match: {type: heartbeat}
    every: 2m
  - name: site
    kind: group
    match: {type: unreachable}
    group_by: [attributes.site]
    group_wait: 20s
  - name: seq
    kind: sequence
    steps: [{type: down}, {type: auth}, {type: up}]
    within: 2m
    on_complete: [{emit: {type: seq.done}}]
    on_timeout: [{incident: {action: open}}]
"""


def recording(path: Path, n: int = 3000) -> None:
    rnd = random.Random(42)
    t = 1_800_000_000.0
    lines = []
    for i in range(n):
        t += rnd.expovariate(1 / 2.0)
        kind = rnd.choice(["down", "up", "auth", "heartbeat", "unreachable", "noise"])
        host = f"h{rnd.randrange(20)}"
        doc = {"id": f"e{i}", "time": round(t, 3), "host": host, "type": kind, "severity": "major"}
        if kind == "unreachable":
            doc["attributes"] = {"site": f"s{rnd.randrange(3)}"}
        lines.append(orjson.dumps(doc))
    path.write_bytes(b"\n".join(lines) + b"\n")


async def run_once(tmp_path: Path, events: Path) -> tuple[str, int]:
    summary = await replay_mod.replay(events, build_pipeline(Config(rules_dir=tmp_path / "rules")))
    return summary.digest, summary.events_out


async def test_same_output_every_run_and_for_any_batch_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "l2.yaml").write_text(RULES)
    events = tmp_path / "mixed.ndjson"
    recording(events)
    first = await run_once(tmp_path, events)
    assert first[1] > 3000  # the rules added timeouts, storms, missed heartbeats, groups, sequences
    assert await run_once(tmp_path, events) == first
    monkeypatch.setattr(recording_mod, "BATCH", 7)
    assert await run_once(tmp_path, events) == first
