"""`correlator replay`: the same file gives the same output, and bad lines are named by file and line."""

from __future__ import annotations

import random
import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration


def write_recording(path, n=2000, seed=7):
    rnd = random.Random(seed)
    t = 1_800_000_000
    with path.open("wb") as f:
        for i in range(n):
            t += rnd.randint(0, 5)
            doc = {
                "host": f"sw{rnd.randint(1, 20)}",
                "type": rnd.choice(["IF-MIB::linkDown", "IF-MIB::linkUp", "SNMPv2-MIB::coldStart"]),
                "severity": rnd.choice(["major", "clear", "info"]),
                "time": t,
                "attributes": {"ifIndex": rnd.randint(1, 48)},
            }
            if i % 2:
                doc["id"] = f"rec-{i}"  # half carry ids, half get derived ones
            f.write(orjson.dumps(doc) + b"\n")


def replay(*args):
    return subprocess.run(
        [sys.executable, "-m", "correlator", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_same_file_twice_gives_identical_output(tmp_path):
    rec = tmp_path / "rec.ndjson"
    write_recording(rec)
    a = replay(rec, "--json", "--output", tmp_path / "a.ndjson")
    b = replay(rec, "--json", "--output", tmp_path / "b.ndjson")
    assert a.returncode == 0, a.stderr
    sa, sb = orjson.loads(a.stdout), orjson.loads(b.stdout)
    assert sa["events_in"] == 2000
    assert sa["digest"] == sb["digest"]
    assert (tmp_path / "a.ndjson").read_bytes() == (tmp_path / "b.ndjson").read_bytes()
    assert sa["first_time"] < sa["last_time"]


def test_invalid_lines_are_reported_with_file_and_line(tmp_path):
    rec = tmp_path / "bad.ndjson"
    rec.write_text('{"host": "a", "type": "t"}\nnot json\n{"host": "a", "type": "t", "severity": "loud"}\n')
    r = replay(rec)
    assert r.returncode == 1
    assert f"{rec}:2: " in r.stderr
    assert f"{rec}:3: severity:" in r.stderr
    assert "events_in: 1" in r.stdout


def test_missing_file(tmp_path):
    r = replay(tmp_path / "nope.ndjson")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_a_daemon_started_on_the_replay_data_dir_shows_its_incidents(tmp_path, make_daemon):
    """`--data DIR` keeps the stores: the daemon (and so the API and CLI) serves the replayed incidents."""
    rules = tmp_path / "replay-rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - name: link\n    kind: pair\n    match: {type: linkDown}\n    close: {type: linkUp}\n"
        "    group_by: [host, resource]\n    within: 30s\n"
        "    on_timeout: [{incident: {action: open, title: '{host} {resource} down'}}]\n"
    )
    rec = tmp_path / "rec.ndjson"
    t = 1_800_000_000
    rec.write_text(
        "".join(
            orjson.dumps({"host": h, "type": "linkDown", "resource": "Gi0/1", "severity": "major", "time": t + i})
            .decode() + "\n"
            for i, h in enumerate(["sw1", "sw2"])
        )
    )  # fmt: skip
    r = replay(rec, "--rules", rules, "--data", tmp_path / "var", "--wait", "1m", "--json")
    assert r.returncode == 0, r.stderr
    assert [i["id"] for i in orjson.loads(r.stdout)["incidents"]] == ["INC-000001", "INC-000002"]
    d = make_daemon()  # its storage.data_dir is tmp_path / "var"
    status, body = d.get("/api/v1/incidents/INC-000002")
    assert status == 200, body
    assert (body["incident"]["host"], body["incident"]["opened_at"]) == ("sw2", "2027-01-15T08:00:31Z")
