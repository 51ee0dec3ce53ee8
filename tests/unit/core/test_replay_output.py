"""Replay's output: the lines it writes (joined a few at a time) and its digest against the plain
line-by-line form, and the events it counts as suppressed: those its own change windows set aside,
not recorded lines that already carry the attribute."""

from __future__ import annotations

import asyncio
import hashlib
import io

import orjson

from correlator.event import Event, Severity
from correlator.pipeline import Pipeline, StageContext
from correlator.recording import read_events
from correlator.replay import WRITE_LINES, ReplaySummary, replay

_ATTRIBUTES = [
    {},
    {"maintenance": "suppress", "change_id": "CHG-1"},
    {"maintenance": "suppress"},  # no change named: counted under ""
    {"maintenance": "tag", "change_id": "CHG-2"},
    {"x": {"maintenance": "suppress"}},  # nested: the text matches, the attribute does not
    {"note": '"maintenance":"suppress"'},  # in a string value, escaped: no match
]


def test_written_lines_digest_and_suppressed_counts_equal_the_line_by_line_form(tmp_path):
    path = tmp_path / "rec.ndjson"
    n = 3 * WRITE_LINES + 5  # whole chunks and a short one
    with path.open("wb") as f:
        for i in range(n):
            doc = {"host": f"h{i % 7}", "type": "t", "time": 1_800_000_000.0 + i}
            doc["attributes"] = _ATTRIBUTES[(i * 5) % len(_ATTRIBUTES)]
            if i % 4 == 0:  # a clear in a window is tagged but passes: not suppressed
                doc["severity"] = "clear"
            f.write(orjson.dumps(doc) + b"\n")
    out = io.BytesIO()
    summary = asyncio.run(replay(path, Pipeline([]), out))

    events = [e for batch in read_events(path, ReplaySummary(), None) for e in batch]
    expected = b"".join(orjson.dumps(e.to_dict(), option=orjson.OPT_APPEND_NEWLINE) for e in events)
    assert out.getvalue() == expected
    assert summary.digest == hashlib.sha256(expected).hexdigest()
    # The recording says some were suppressed when it was made; this replay has no window.
    assert any(e.attributes.get("maintenance") == "suppress" for e in events)
    assert not summary.suppressed
    assert summary.events_out == n
    # severities mixed in a batch (info, clear) and alone in one: counted as one by one
    severities: dict[str, int] = {}
    for e in events:
        severities[e.severity.value] = severities.get(e.severity.value, 0) + 1
    assert dict(summary.by_severity) == severities and len(severities) == 2
    only_info = tmp_path / "info.ndjson"
    only_info.write_bytes(b'{"host":"h","type":"t","time":1800000000.0}\n' * 3)
    assert dict(asyncio.run(replay(only_info, Pipeline([]))).by_severity) == {"info": 3}


class _Window:
    """Sets aside every third non-clear event as a change window does (correlator/changes/stage.py)."""

    name = "maintenance"

    def __init__(self) -> None:
        self.seen = 0

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        out = []
        for ev in events:
            self.seen += 1
            if ev.severity is not Severity.CLEAR and self.seen % 3 == 0:
                ev.attributes = {
                    **ev.attributes,
                    "change_id": f"CHG-{self.seen % 2}",
                    "maintenance": "suppress",
                }
                ctx.set_aside.append(ev)
            else:
                out.append(ev)
        return out


def test_suppressed_counts_what_the_replay_set_aside_by_change_and_still_writes_it(tmp_path):
    path = tmp_path / "rec.ndjson"
    with path.open("wb") as f:
        for i in range(100):
            doc = {
                "host": "h",
                "type": "t",
                "time": 1_800_000_000.0 + i,
                "severity": "clear" if i % 5 == 0 else "major",
            }
            if i % 7 == 0:  # recorded as suppressed, and not set aside here: not counted
                doc["attributes"] = {"maintenance": "suppress", "change_id": "CHG-OLD"}
            f.write(orjson.dumps(doc) + b"\n")
    out = io.BytesIO()
    window = _Window()
    summary = asyncio.run(replay(path, Pipeline([window]), out))
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    set_aside = [d for d in lines if d["attributes"].get("change_id") in ("CHG-0", "CHG-1")]
    assert len(lines) == 100 and summary.events_out == 100  # set aside, still written
    assert "CHG-OLD" not in summary.suppressed
    assert sum(summary.suppressed.values()) == len(set_aside) > 0
    assert summary.suppressed["CHG-0"] == sum(d["attributes"]["change_id"] == "CHG-0" for d in set_aside)


class _Timer:
    """A stage whose timer makes one event at each flush (a level-2 absence firing, say)."""

    name = "timer"

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        return events

    def take_pending(self, ctx: StageContext) -> list[Event]:
        now = ctx.clock.now()
        return [Event("timer-1", now, now, "correlator", "h", "absent", Severity.MAJOR, "", "", {})]


def test_an_event_a_window_sets_aside_during_a_timer_flush_is_kept(tmp_path):
    from correlator.clock import Clock

    class _SuppressAll:
        name = "maintenance"

        async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
            ctx.set_aside.extend(events)
            return []

    pipeline = Pipeline([_Timer(), _SuppressAll()])  # type: ignore[list-item]
    ctx = StageContext(Clock(1_800_000_000.0), live=True)
    out = asyncio.run(pipeline.flush(ctx))
    assert [e.id for e in out] == ["timer-1"]  # stored (set aside), not lost
