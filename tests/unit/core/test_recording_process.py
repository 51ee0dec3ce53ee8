"""A recording read in a second process (correlator/recording_process.py) against the same file read
in-process: the same events field for field (types included), the same counts and error messages,
an unreadable file reported the same way, a child that dies reported and never waited on for good."""

from __future__ import annotations

import asyncio
import marshal
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator import cli, recording_process
from correlator.errors import CorrelatorError
from correlator.event import Event, Severity
from correlator.pipeline import Pipeline
from correlator.recording import BATCH, ReadCounts, read_events
from correlator.recording_process import Reader, event_row, events_from_rows
from correlator.replay import replay
from tests.unit.core.test_event_fast_path import _MUTATIONS, _line, documents


def _fields(ev: Event) -> list[tuple[str, type, Any]]:
    """Every slot with its value's type: `==` alone takes 1 for 1.0 and True for 1."""
    return [(name, type(getattr(ev, name)), getattr(ev, name)) for name in Event.__slots__]


def _recording(path: Path, n: int, seed: int = 7) -> None:
    """Lines of every kind replay meets: plain, the stored form, odd values, blanks, refusals."""
    rnd = random.Random(seed)
    odd = [
        b"",
        b"   ",
        b"{",
        b"[1]",
        b"null",
        b'{"host":"h","type":"t","time":"not a time"}',
        b'{"host":"h","type":"t","time":1800000000.0,"severity":"bogus"}',
        b'{"host":"","type":"t","time":1800000000.0}',
        b'{"host":"h","type":"t","time":1800000000.0,"message":"a\\u0000b"}',
    ]
    with path.open("wb") as f:
        for i in range(n):
            r = rnd.random()
            doc: dict[str, Any] = {
                "time": 1_800_000_000.0 + i / 10,
                "host": f"h{i % 13}",
                "type": f"t.{i % 97}",
            }
            if r < 0.05:
                f.write(rnd.choice(odd) + b"\n")
                continue
            if r < 0.15:  # the stored form, with its own id, times and count
                doc.update(
                    id=f"ev-{i}",
                    source="snmp",
                    received="2027-01-15T08:00:00Z",
                    count=rnd.randint(1, 5),
                    last_seen=1_800_000_100.0,
                )
            if r < 0.3:
                doc["attributes"] = {
                    "n": i,
                    "f": i / 3,
                    "big": 2**63 - 1,
                    "b": i % 2 == 0,
                    "none": None,
                    "list": [1, "x", {"y": [2.5]}],
                    "text": "é ü 漢 \U0001f600",
                }
            if r < 0.4:
                doc["severity"] = rnd.choice(["clear", "minor", "major", "critical", "warning"])
                doc["resource"] = f"Gi0/{i % 5}"
                doc["message"] = 'line\twith "quotes" and \\ back'
            f.write(orjson.dumps(doc) + b"\n")


def _in_process(path: Path) -> tuple[list[list[Event]], ReadCounts]:
    counts = ReadCounts()
    return list(read_events(path, counts, None)), counts


def test_the_child_reads_what_this_process_reads(tmp_path):
    path = tmp_path / "rec.ndjson"
    _recording(path, 2 * BATCH + 345)
    expected, expected_counts = _in_process(path)
    counts = ReadCounts()
    got = list(Reader(path, progress=False).batches(counts))
    assert [len(b) for b in got] == [len(b) for b in expected]  # batches cut at the same lines
    assert [_fields(e) for b in got for e in b] == [_fields(e) for b in expected for e in b]
    assert counts == expected_counts
    assert counts.invalid > 0 and len(counts.errors) == min(counts.invalid, 10)


def test_an_empty_or_all_invalid_recording_gives_the_same_counts(tmp_path):
    for body in [b"", b"\n\n", b"{\nnot json\n[]\n" * 5]:
        path = tmp_path / "rec.ndjson"
        path.write_bytes(body)
        counts = ReadCounts()
        assert list(Reader(path, progress=False).batches(counts)) == []
        assert counts == _in_process(path)[1]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1),
    st.floats(allow_nan=False),
    st.sampled_from(list(Severity)),
    st.dictionaries(st.text(max_size=6), _json, max_size=4),
    st.integers(1, 2**40),
)
def test_an_event_comes_back_from_its_row_with_every_slot_as_it_was(text, t, severity, attributes, count):
    ev = Event(text, t, t + 1, "replay", text, text[::-1], severity, text, text, attributes, "fp", count, t)
    (back,) = events_from_rows(marshal.loads(marshal.dumps([event_row(ev)])))
    assert _fields(back) == _fields(ev)
    assert orjson.dumps(back.to_dict()) == orjson.dumps(ev.to_dict())  # attribute key order too


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(
                documents(), st.sampled_from(_MUTATIONS), st.sampled_from(["message", "attributes", "x"])
            ),
            st.sampled_from([b"", b"  ", b"[1]", b"{", b"null"]),
        ),
        max_size=12,
    )
)
def test_generated_and_mutated_lines_read_the_same_in_the_child(tmp_path_factory, items):
    lines = [item if isinstance(item, bytes) else _line(*item) for item in items]
    path = tmp_path_factory.mktemp("rec") / "rec.ndjson"
    # ids the file lacks are derived from the line, never random: both sides give the same
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    expected, expected_counts = _in_process(path)
    counts = ReadCounts()
    got = list(Reader(path, progress=False).batches(counts))
    assert [_fields(e) for b in got for e in b] == [_fields(e) for b in expected for e in b]
    assert counts == expected_counts


def test_an_unreadable_recording_raises_what_reading_it_here_raises(tmp_path):
    with pytest.raises(OSError) as here:
        _in_process(tmp_path)  # a directory: opening it fails
    with pytest.raises(OSError) as there:
        list(Reader(tmp_path, progress=False).batches(ReadCounts()))
    assert (there.value.errno, there.value.filename) == (here.value.errno, here.value.filename)
    assert type(there.value) is type(here.value)


def test_a_child_that_dies_is_reported_not_waited_for(tmp_path):
    path = tmp_path / "rec.ndjson"
    _recording(path, 20 * BATCH)  # more than the pipe holds: the child is still writing
    reader = Reader(path, progress=False)
    batches = reader.batches(ReadCounts())
    assert len(next(batches)) == BATCH  # it has started, and sent events
    reader._proc.kill()  # as if it crashed
    with pytest.raises(CorrelatorError, match="reading process ended"):
        list(batches)


def test_a_child_that_ends_as_it_starts_leaves_the_reading_to_the_replay(tmp_path, monkeypatch, capfd):
    """Before its first frame the child has read nothing (an interpreter that cannot import the
    package, a process killed at once): the replay reads the recording itself, to the same result."""
    path = tmp_path / "rec.ndjson"
    _recording(path, 2 * BATCH + 7)
    expected, expected_counts = _in_process(path)
    monkeypatch.setattr(recording_process, "_CHILD", "import sys; sys.exit(3)")
    counts = ReadCounts()
    got = list(Reader(path, progress=False).batches(counts))
    assert [_fields(e) for b in got for e in b] == [_fields(e) for b in expected for e in b]
    assert counts == expected_counts
    assert "reading process ended as it started (status 3): reading in this process" in capfd.readouterr().err


def test_a_child_that_starts_with_something_else_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "rec.ndjson"
    _recording(path, 10)
    program = "import os, sys; os.write(int(sys.argv[3]), b'\\1\\0\\0\\0x'); sys.stdin.read()"
    monkeypatch.setattr(recording_process, "_CHILD", program)
    reader = Reader(path, progress=False)
    with pytest.raises(CorrelatorError, match="not the one it starts with"):
        list(reader.batches(ReadCounts()))
    assert reader._proc.returncode is not None


def test_stopping_early_stops_the_child(tmp_path):
    path = tmp_path / "rec.ndjson"
    _recording(path, 20 * BATCH)  # more than the pipe holds: the child is still writing
    reader = Reader(path, progress=False)
    batches = reader.batches(ReadCounts())
    assert len(next(batches)) == BATCH
    batches.close()
    assert reader._proc.returncode is not None  # reaped, not left running or a zombie


def test_the_child_draws_the_progress_bar(tmp_path, capfd):
    path = tmp_path / "rec.ndjson"
    _recording(path, BATCH // 2)
    list(Reader(path, progress=True).batches(ReadCounts()))
    assert "100%" in capfd.readouterr().err


def test_a_big_recording_is_read_in_a_second_process_only_with_a_cpu_to_spare(tmp_path, monkeypatch):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(b"{}\n" * 10)
    monkeypatch.setattr(recording_process, "PARALLEL_MIN_BYTES", 10)
    monkeypatch.setattr(recording_process.os, "sched_getaffinity", lambda pid: {0, 1})
    assert recording_process.worthwhile(path)
    assert not recording_process.worthwhile(tmp_path / "missing.ndjson")
    monkeypatch.setattr(recording_process.os, "sched_getaffinity", lambda pid: {0})
    assert not recording_process.worthwhile(path)
    monkeypatch.setattr(recording_process.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(recording_process, "PARALLEL_MIN_BYTES", 100)
    assert not recording_process.worthwhile(path)


def test_the_replay_command_gives_the_same_report_either_way(tmp_path, monkeypatch, capsys):
    path = tmp_path / "rec.ndjson"
    _recording(path, 2 * BATCH + 10)
    (tmp_path / "rules").mkdir()
    started: list[Path] = []
    real = recording_process.Reader.__init__

    def spy(self: Reader, p: Path, progress: bool) -> None:
        started.append(p)
        real(self, p, progress)

    monkeypatch.setattr(recording_process.Reader, "__init__", spy)
    monkeypatch.setattr(recording_process.os, "sched_getaffinity", lambda pid: {0, 1})
    reports = []
    for min_bytes in (1 << 40, 0):  # in-process, then the child
        monkeypatch.setattr(recording_process, "PARALLEL_MIN_BYTES", min_bytes)
        out = tmp_path / f"out-{min_bytes}.ndjson"
        argv = ["replay", str(path), "--rules", str(tmp_path / "rules"), "--json", "-o", str(out)]
        assert cli.main(argv) == 1  # the recording has invalid lines
        report = orjson.loads(capsys.readouterr().out)
        for key in ("elapsed_seconds", "events_per_second"):
            report.pop(key)
        reports.append((report, out.read_bytes()))
    assert started == [path]  # the second run only
    assert reports[0] == reports[1]
    assert reports[0][0]["events_in"] > BATCH


def test_replay_takes_a_reader_in_place_of_reading(tmp_path):
    path = tmp_path / "rec.ndjson"
    _recording(path, BATCH + 1)
    plain = asyncio.run(replay(path, Pipeline([])))
    child = asyncio.run(replay(path, Pipeline([]), reader=Reader(path, progress=False)))
    assert (child.digest, child.lines, child.events_in, child.invalid, child.errors) == (
        plain.digest,
        plain.lines,
        plain.events_in,
        plain.invalid,
        plain.errors,
    )


def test_ctrl_c_is_the_replays_to_handle_not_the_childs(tmp_path, capfd):
    path = tmp_path / "rec.ndjson"
    _recording(path, 12 * BATCH)  # more than the pipe holds: the child is still reading
    reader = Reader(path, progress=False)
    # As the terminal sends it to the whole group, at once: while the child is still starting.
    os.kill(reader._proc.pid, signal.SIGINT)
    counts = ReadCounts()
    got = sum(len(b) for b in reader.batches(counts))
    assert got == counts.events_in == _in_process(path)[1].events_in
    assert "KeyboardInterrupt" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the replay's own again


_RUN = """
import os, sys
from pathlib import Path
{closes}
from correlator.recording import ReadCounts
from correlator.recording_process import Reader
counts = ReadCounts()
n = sum(len(b) for b in Reader(Path(sys.argv[1]), progress=False).batches(counts))
os.write(2, b"read %d of %d" % (n, counts.events_in))
"""


@pytest.mark.parametrize(
    ("flags", "closes"),
    [
        (["-I"], ""),  # isolated: no PYTHONPATH, no user site, no cwd: the child still finds its code
        (["-E"], "os.close(0); os.close(1)"),  # the pipe's ends would be the lowest free descriptors
    ],
)
def test_the_child_starts_whatever_the_replays_flags_and_descriptors(tmp_path, flags, closes):
    path = tmp_path / "rec.ndjson"
    _recording(path, 2 * BATCH)
    expected = _in_process(path)[1].events_in
    done = subprocess.run(
        [sys.executable, *flags, "-c", _RUN.format(closes=closes), str(path)],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().endswith(f"read {expected} of {expected}")


def test_nothing_in_the_current_directory_or_on_the_childs_stdout_gets_in_the_way(tmp_path, monkeypatch):
    path = tmp_path / "rec.ndjson"
    _recording(path, 2 * BATCH)
    here = tmp_path / "cwd"
    (here / "correlator").mkdir(parents=True)
    for shadow in (here / "hashlib.py", here / "correlator" / "__init__.py"):
        shadow.write_text("raise SystemExit(3)\n")  # imported only if the cwd comes first
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text("print('sitecustomize says hello')\n")
    monkeypatch.chdir(here)
    monkeypatch.setenv("PYTHONPATH", str(site_dir))
    counts = ReadCounts()
    got = list(Reader(path, progress=False).batches(counts))
    expected, expected_counts = _in_process(path)
    assert [_fields(e) for b in got for e in b] == [_fields(e) for b in expected for e in b]
    assert counts == expected_counts


@pytest.mark.parametrize(
    "frame",
    [
        b"\x05\x00\x00\x00hello",  # a length, then bytes that do not unmarshal
        b"\x05\x00\x00\x00\xe9\x05\x00\x00\x00",  # marshal of an int, not a frame's tuple
        b"\xff\xff\xff\x7f",  # a length beyond any frame: never read, the child not waited on
    ],
)
def test_a_frame_the_child_never_writes_ends_the_replay_and_the_child(tmp_path, monkeypatch, frame):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(b"{}\n")
    # A child that writes this, then stays (as one blocked on a full pipe would).
    monkeypatch.setattr(
        recording_process,
        "_CHILD",
        f"import os, sys, time; os.write(int(sys.argv[3]), {frame!r}); time.sleep(120)",
    )
    reader = Reader(path, progress=False)
    with pytest.raises(CorrelatorError, match=r"reading .* failed"):
        list(reader.batches(ReadCounts()))
    assert reader._proc.returncode is not None  # killed and reaped, not waited on for two minutes


def _report(argv: list[str], **kw: Any) -> dict[str, Any]:
    """`correlator replay ... --json` in a process of its own, its report less the timings."""
    done = subprocess.run(argv, capture_output=True, check=False, **kw)
    assert done.returncode in (0, 1), done.stderr.decode()
    assert b"reading in this process" not in done.stderr  # where a child started, it read
    report = orjson.loads(done.stdout)
    for key in ("elapsed_seconds", "events_per_second"):
        report.pop(key)
    report["errors"] = [e.split(":", 1)[1] for e in report["errors"]]  # less the name it was given
    return report


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: the replay never starts the child")
def test_a_recording_named_by_a_descriptor_is_read_as_the_replay_would_read_it(tmp_path):
    """`/dev/stdin` and `/dev/fd/N` name the replay's own descriptors: the child gets the file the
    replay opened, not the name (which would be its own, empty, stdin)."""
    path = tmp_path / "rec.ndjson"
    _recording(path, (recording_process.PARALLEL_MIN_BYTES // 60) + BATCH)
    assert path.stat().st_size >= recording_process.PARALLEL_MIN_BYTES
    (tmp_path / "rules").mkdir()
    cmd = [sys.executable, "-m", "correlator", "replay"]
    opts = ["--rules", str(tmp_path / "rules"), "--events-only", "--json"]
    expected = _report([*cmd, str(path), *opts])
    assert expected["events_in"] > BATCH
    with path.open("rb") as f:
        assert _report([*cmd, "/dev/stdin", *opts], stdin=f) == expected
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _report([*cmd, f"/dev/fd/{fd}", *opts], pass_fds=(fd,)) == expected
    finally:
        os.close(fd)


@pytest.mark.skipif(
    getattr(sys, "_base_executable", sys.executable) == sys.executable, reason="not run from a virtualenv"
)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: the replay never starts the child")
def test_a_replay_whose_import_path_was_set_at_run_time_reads_in_its_child(tmp_path):
    """A launcher that sets `sys.path` itself (zipapps, wrappers): here the interpreter below the
    virtualenv, given the virtualenv's packages at run time. The child imports from the same path."""
    path = tmp_path / "rec.ndjson"
    _recording(path, (recording_process.PARALLEL_MIN_BYTES // 60) + BATCH)
    assert path.stat().st_size >= recording_process.PARALLEL_MIN_BYTES
    (tmp_path / "rules").mkdir()
    import site

    paths = [*site.getsitepackages(), str(Path(recording_process.__file__).resolve().parents[1])]
    argv = ["replay", str(path), "--rules", str(tmp_path / "rules"), "--events-only", "--json"]
    program = (
        f"import sys; sys.path[:0] = {paths!r}; from correlator.cli import main; sys.exit(main({argv!r}))"
    )
    base = sys._base_executable  # type: ignore[attr-defined]
    done = subprocess.run([base, "-I", "-c", program], capture_output=True, check=False, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr.decode()
    assert b"reading in this process" not in done.stderr  # the child read it
    report = orjson.loads(done.stdout)
    assert (report["lines"], report["events_in"]) == (
        _in_process(path)[1].lines,
        _in_process(path)[1].events_in,
    )


def test_the_child_imports_from_this_process_path_as_it_is(tmp_path, monkeypatch):
    """The path in order, the package's directory not moved ahead of what came before it (a stray
    module there would be imported by the child only), entries that are str subclasses as text."""

    class Entry(str):
        pass

    monkeypatch.setattr(sys, "path", [*sys.path, Entry(str(tmp_path / "elsewhere"))])
    home = str(Path(recording_process.__file__).resolve().parents[1])
    assert home in {os.path.realpath(p or ".") for p in sys.path}  # the tests run from the checkout
    commands: list[list[str]] = []
    real = subprocess.Popen

    def spy(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        commands.append(cmd)
        return real(cmd, **kw)

    monkeypatch.setattr(recording_process.subprocess, "Popen", spy)
    path = tmp_path / "rec.ndjson"
    _recording(path, BATCH + 3)
    counts = ReadCounts()
    got = sum(len(b) for b in Reader(path, progress=False).batches(counts))
    assert got == counts.events_in == _in_process(path)[1].events_in
    (cmd,) = commands
    given = marshal.loads(bytes.fromhex(cmd[cmd.index(recording_process._CHILD) + 1]))
    assert given == [str(p) for p in sys.path]
    assert all(type(p) is str for p in given)
