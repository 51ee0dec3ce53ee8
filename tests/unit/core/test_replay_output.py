"""Replay's output: the lines it writes (joined a few at a time), its digest and the events it counts
as suppressed by a maintenance window, against the plain line-by-line form."""

from __future__ import annotations

import asyncio
import hashlib
import io

import orjson

from correlator.event import Severity
from correlator.pipeline import Pipeline
from correlator.replay import WRITE_LINES, ReplaySummary, read_events, replay

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
    suppressed: dict[str, int] = {}
    for e in events:
        if e.attributes.get("maintenance") == "suppress" and e.severity is not Severity.CLEAR:
            k = e.attributes.get("change_id") or ""
            suppressed[k] = suppressed.get(k, 0) + 1
    assert out.getvalue() == expected
    assert summary.digest == hashlib.sha256(expected).hexdigest()
    assert dict(summary.suppressed) == suppressed and suppressed["CHG-1"] and suppressed[""]
    assert summary.events_out == n
    # severities mixed in a batch (info, clear) and alone in one: counted as one by one
    severities: dict[str, int] = {}
    for e in events:
        severities[e.severity.value] = severities.get(e.severity.value, 0) + 1
    assert dict(summary.by_severity) == severities and len(severities) == 2
    only_info = tmp_path / "info.ndjson"
    only_info.write_bytes(b'{"host":"h","type":"t","time":1800000000.0}\n' * 3)
    assert dict(asyncio.run(replay(only_info, Pipeline([]))).by_severity) == {"info": 3}
