"""`correlator replay --rules DIR` runs the recorded events through those rules."""

from __future__ import annotations

import hashlib
import json

import orjson

from correlator.cli import main
from correlator.recording import recorded_event


def recording(tmp_path, rule_lines: str, events: list[dict]) -> tuple:
    """A rules directory with one rule file, and an NDJSON recording of `events`."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n" + rule_lines)
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in events))
    return rules, path


def test_replay_uses_the_given_rules(tmp_path, capsys):
    rules, events = recording(
        tmp_path,
        "  - {name: drop-noise, match: {type: noise}, drop: true}\n"
        "  - {name: fold-x, match: {type: x}, dedup: 5m, classify: {severity: major}}\n",
        [
            {"host": "h", "type": "x", "time": 1000},
            {"host": "h", "type": "noise", "time": 1001},
            {"host": "h", "type": "x", "time": 1060},
            {"host": "h", "type": "x", "time": 1400},
        ],
    )
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(events), "--rules", str(rules), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["events_in"], summary["events_out"]) == (4, 2)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    got = [(e["time"], e["severity"], e["count"]) for e in written]
    assert got == [(1000, "major", 2), (1400, "major", 1)]


def test_replay_with_broken_rules_says_where(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("rules:\n  - name: a\n    dorp: true\n")
    events = tmp_path / "e.ndjson"
    events.write_text("{}\n")
    assert main(["replay", str(events), "--rules", str(tmp_path)]) == 2
    assert "r.yaml:3:5: unknown key 'dorp'" in capsys.readouterr().err


def test_replay_wait_lets_timers_due_after_the_last_event_fire(tmp_path, capsys):
    rules, events = recording(
        tmp_path,
        "  - {name: link, kind: pair, match: {type: down}, close: {type: up}, group_by: [host],"
        " within: 30s, on_timeout: [{annotate: {seen: 'yes'}}]}\n",
        [{"host": "h", "type": "down", "time": 1000}],
    )
    for wait, expected in (([], ["down"]), (["--wait", "1m"], ["down", "link.timeout"])):
        out = tmp_path / "out.ndjson"
        assert main(["replay", str(events), "--rules", str(rules), "-o", str(out), *wait]) == 0
        capsys.readouterr()
        written = [json.loads(line) for line in out.read_text().splitlines()]
        assert [e["type"] for e in written] == expected
    assert written[1]["time"] == 1030  # at its own deadline, not at the end of the wait


def test_a_recording_with_poison_reports_invalid_lines_and_replays_the_rest(tmp_path, capsys):
    """The door applies to recordings (not its time policy: a recording is old by nature)."""
    rules, events = recording(
        tmp_path,
        "  - {name: major, match: {type: x}, classify: {severity: major}}\n",
        [
            {"host": "h", "type": "x", "time": 1000},  # 1970: old, still replayed
            {"host": "core\u0000sw1", "type": "x", "time": 1001},
            {"host": "h", "type": "x", "time": "9999-12-31T23:59:59-01:00"},  # year 10000 in UTC
            {
                "host": "h",
                "type": "x",
                "time": 1002,
                "attributes": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            },
            {"host": "h", "type": "x", "time": 1003, "message": "bad \ud800 text"},
            {"host": "h", "type": "x", "time": 1004},
        ],
    )
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(events), "--rules", str(rules), "-o", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["events_in"], summary["invalid"], summary["events_out"]) == (2, 4, 2)
    assert [e.split(": ", 1)[0] for e in summary["errors"]] == [f"{events}:{n}" for n in (2, 3, 4, 5)]
    assert f"{events}:2: host: contains U+0000" in summary["errors"][0]
    assert f"{events}:3: time: " in summary["errors"][1]
    assert "nested deeper than" in summary["errors"][2] and "surrogate" in summary["errors"][3]
    assert summary["first_time"] == "1970-01-01T00:16:40Z"
    assert [json.loads(line)["time"] for line in out.read_text().splitlines()] == [1000, 1004]


def test_an_id_missing_from_a_line_is_the_hash_of_its_number_and_text():
    """Derived ids are part of a replay's output (and of the ids rules make from them): the same
    line at the same place must keep its id across versions, or digests of old runs stop matching."""
    line = b'{"host": "h", "type": "x", "time": 1000}'
    ev = recorded_event(orjson.loads(line), 7, line, "replay", 0.0)
    assert ev.id == hashlib.blake2b(b"7:" + line, digest_size=16).hexdigest()
    assert recorded_event(orjson.loads(line), 8, line, "replay", 0.0).id != ev.id
