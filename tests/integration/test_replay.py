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
