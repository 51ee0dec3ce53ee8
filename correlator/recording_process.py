"""A recording read in a second process while this one correlates.

Reading a line (orjson, the door's checks, the id derived from the line, the fingerprint, the event
built) costs this process about as much as both rule levels at 1,000 rules. So for a recording of
some size on a machine with a CPU to spare, a child process reads it with the very function replay
runs in-process (`recording.read_events`) and sends the events over a pipe; rebuilding an event
from its row costs this process about a fifth of reading its line. The events, their order, the
counts and the error messages are the same either way (tests compare them).

The child is `python -P -c <_CHILD> PATH FILE FD SRC [--progress]`: it takes this process's import
path (PATH, marshal'd, in hex), reads the recording from the descriptor SRC this process opened
(FILE names it in messages: `/dev/stdin` or `/dev/fd/3` are read as this process would read them),
and writes its frames to the pipe FD (its stdout is the replay's stderr). Its first frame is empty
(a length of 0): it has started, and nothing was read before it; a child that ends before it (an
interpreter that cannot import this package) leaves the reading to this process. After it, a frame
is a 4-byte little-endian length, then a marshal'd
`(lines, invalid, new errors, rows)`: what reading counted so far, and up to `recording.BATCH`
events as tuples of their fields in slot order (the severity by name); `rows` is None in the last
frame, or the arguments of the OSError that ended reading (raised again here, so an unreadable
file is reported as when this process reads it). marshal is fast and exact for these values
(text, numbers, and the JSON values of attributes, key order kept), and is only ever given what
the child wrote, never the file's bytes.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import correlator
from correlator.errors import CorrelatorError
from correlator.event import _BY_NAME, Event

if TYPE_CHECKING:  # the child imports it only once the metrics are deferred (the end of this file)
    from correlator.recording import ReadCounts

# Smaller recordings are read in-process: starting the child costs ~50 ms of CPU, which a second
# CPU hides behind this process's own start-up, but which a small file would not pay back.
PARALLEL_MIN_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20  # lets the child run ahead by about 8 batches (Linux's default cap for a pipe)
_MAX_FRAME = 1 << 30  # far above any batch: a length beyond it is not one the child wrote
_new_event = object.__new__


def worthwhile(path: Path) -> bool:
    """Whether to read `path` in a second process: big enough, and this process may use two CPUs.
    Never from a frozen application (PyInstaller and the like), whose `sys.executable` is the
    application itself, not an interpreter to start the child with."""
    if getattr(sys, "frozen", False):
        return False
    try:
        return path.stat().st_size >= PARALLEL_MIN_BYTES and len(os.sched_getaffinity(0)) > 1
    except (OSError, AttributeError):  # no such file (reported later), or no affinity call here
        return False


class Reader:
    """The child reading one recording, started at once: it reads while the caller starts up."""

    def __init__(self, path: Path, progress: bool) -> None:
        """Raises OSError when no process can be started (the caller then reads in-process). A
        recording this process cannot open, or that is not a regular file, is read in-process by
        `batches`, which then raises what reading it here raises."""
        self.path = path
        self._progress = progress
        self._proc: subprocess.Popen[bytes] | None = None
        self._frames: IO[bytes] | None = None
        # The child reads the file this process opened, not its name again: `/dev/stdin` or
        # `/dev/fd/3` name this process's descriptors, which the child does not have.
        import fcntl  # here: Linux and the like only, as `worthwhile` is

        try:
            # O_NONBLOCK: a FIFO's open would wait for a writer (only regular files go on).
            src = _above_stdio(fcntl, os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
        except OSError:
            return
        try:
            if stat.S_ISREG(os.fstat(src).st_mode):
                self._start(fcntl, src)
        finally:
            os.close(src)

    def _start(self, fcntl: Any, src: int) -> None:
        # The parent's interpreter flags (-X, -W, -O ...), and -P: never the current directory
        # first on the path while the child starts, where a stray hashlib.py would be imported.
        # Then this process's own import path, so the child imports what this process imported
        # (a launcher or wrapper may have set the path at run time); the package's own directory
        # goes first only when that path does not hold it: the child runs this very code.
        paths = [str(p) for p in sys.path if isinstance(p, str)]
        home = str(Path(correlator.__file__).resolve().parents[1])
        if home not in {os.path.realpath(p or ".") for p in paths}:
            paths.insert(0, home)
        program = [sys.executable, *_interpreter_flags(), "-P", "-c", _CHILD, marshal.dumps(paths).hex()]
        # Frames come on a pipe of their own: whatever else the child's start-up prints (a
        # sitecustomize, a library) goes to its stdout, which is this process's stderr, and can
        # neither corrupt a frame nor the report this process writes to its stdout. The write
        # end above 2: a replay started with its standard descriptors closed gets the lowest free
        # ones from os.pipe, which the child's stdin, stdout and stderr would take over.
        r, low = os.pipe()
        try:
            w = _above_stdio(fcntl, low)
        except OSError:
            os.close(r)
            raise
        cmd = [*program, os.fspath(self.path), str(w), str(src)]
        if self._progress:
            cmd.append("--progress")
        try:
            with _sigint_ignored():  # the child starts with Ctrl-C ignored, and Python keeps it so
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr.fileno() if _has_fd(sys.stderr) else subprocess.DEVNULL,
                    pass_fds=(w, src),
                )
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self._frames = os.fdopen(r, "rb")

    def batches(self, counts: ReadCounts) -> Iterator[list[Event]]:
        """The events in batches, as `read_events` yields them, with `counts` kept as it keeps them."""
        f = self._frames
        try:
            if f is None or not self._started(f):
                from correlator.recording import read_events

                yield from read_events(self.path, counts, sys.stderr if self._progress else None)
                return
            proc = self._proc
            assert proc is not None
            while True:
                head = f.read(4)
                size = int.from_bytes(head, "little")
                body = f.read(size) if len(head) == 4 and size <= _MAX_FRAME else b""
                if size > _MAX_FRAME:
                    self._ended_early("a frame it sent was longer than any it writes")
                if len(head) < 4 or len(body) < size:
                    self._ended_early()
                try:
                    lines, invalid, errors, rows = marshal.loads(body)  # noqa: S302 (the child's own frames)
                except (ValueError, EOFError, TypeError):
                    self._ended_early("a frame it sent could not be read")
                counts.lines = lines
                counts.invalid = invalid
                counts.errors += errors
                if type(rows) is not list:  # the end: None, or the file's OSError as its arguments
                    proc.wait()  # the child exits right after its last frame
                    if rows is not None:
                        raise OSError(*rows)
                    break
                counts.events_in += len(rows)
                yield events_from_rows(rows)
        finally:
            self.close()

    def _started(self, f: IO[bytes]) -> bool:
        """Whether the child got as far as its first (empty) frame; if not, it is reaped and
        nothing was read: this process reads the recording instead."""
        head = f.read(4)
        if head == b"\0\0\0\0":
            return True
        if len(head) == 4:
            self._ended_early("its first frame was not the one it starts with")
        rc = self.close()
        print(
            f"correlator replay: the reading process ended as it started (status {rc}): "
            "reading in this process",
            file=sys.stderr,
        )
        return False

    def close(self) -> int | None:
        """Stop the child (whether or not it finished) and reap it; its exit status."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.kill()
        rc = self._proc.wait()
        if self._frames is not None:
            self._frames.close()
        return rc

    def _ended_early(self, why: str = "") -> NoReturn:
        assert self._proc is not None
        if why:
            self._proc.kill()
        rc = self._proc.wait()
        raise CorrelatorError(
            f"replay: reading {self.path} failed: " + (why or f"the reading process ended with status {rc}")
        )


# The child's program: its first argument is the import path to use, marshal'd, in hex.
_CHILD = (
    "import sys, marshal; sys.path[:] = marshal.loads(bytes.fromhex(sys.argv.pop(1))); "
    "from correlator.recording_process import child; child(sys.argv[1:])"
)


def _above_stdio(fcntl: Any, fd: int) -> int:
    """`fd` moved to a descriptor above 2 (close-on-exec), which the child's stdin, stdout and
    stderr cannot take over; the original is closed either way."""
    try:
        return int(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
    finally:
        os.close(fd)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C reaches the replay's whole process group: the replay stops, and kills its child on
    every way out. A child that starts with SIGINT ignored keeps it ignored (Python installs its
    own handler only where the default was), so it never prints a KeyboardInterrupt of its own,
    not even while it starts. A Ctrl-C in the few milliseconds of the start is ignored here too."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: the child ignores it once it runs
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _interpreter_flags() -> list[str]:
    # The flags multiprocessing and test.support start their children with.
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return flags


def _has_fd(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):  # captured or replaced (tests, embedding)
        return False
    return True


def event_row(ev: Event) -> tuple[Any, ...]:
    """An event's fields in slot order, the severity by name: what marshal can carry."""
    return (
        ev.id,
        ev.time,
        ev.received,
        ev.source,
        ev.host,
        ev.type,
        ev.severity.value,
        ev.resource,
        ev.message,
        ev.attributes,
        ev.fingerprint,
        ev.count,
        ev.last_seen,
    )


def events_from_rows(rows: list[tuple[Any, ...]]) -> list[Event]:
    """The events `event_row` made the rows of. Slots set one by one, as `plain_event` does: no
    `__init__` frame with its thirteen arguments per event (a test checks every slot is set)."""
    out: list[Event] = []
    append = out.append
    by_name = _BY_NAME
    new = _new_event
    for ident, t, received, source, host, type_, sev, resource, message, attributes, fp, count, last in rows:
        ev = new(Event)
        ev.id = ident
        ev.time = t
        ev.received = received
        ev.source = source
        ev.host = host
        ev.type = type_
        ev.severity = by_name[sev]
        ev.resource = resource
        ev.message = message
        ev.attributes = attributes
        ev.fingerprint = fp
        ev.count = count
        ev.last_seen = last
        append(ev)
    return out


def _send(
    out: IO[bytes], counts: ReadCounts, told: int, rows: list[tuple[Any, ...]] | tuple[Any, ...] | None
) -> None:
    frame = marshal.dumps((counts.lines, counts.invalid, counts.errors[told:], rows))
    out.write(len(frame).to_bytes(4, "little"))
    out.write(frame)


def main(argv: list[str]) -> int:
    """The child: read the recording `argv[0]` from the descriptor `argv[2]`, write frames to the
    descriptor `argv[1]`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited so already, unless started elsewhere
    from correlator.recording import ReadCounts, read_events

    path = Path(argv[0])
    progress = sys.stderr if "--progress" in argv[3:] else None
    out = os.fdopen(int(argv[1]), "wb")
    src = os.fdopen(int(argv[2]), "rb")
    import fcntl

    with contextlib.suppress(AttributeError, OSError):  # not Linux, or above the cap: as it is
        fcntl.fcntl(out.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    counts = ReadCounts()
    told = 0
    try:
        out.write(b"\0\0\0\0")  # started: the replay reads on from here
        out.flush()  # now, not with the first batch: a child killed while reading it is reported
        for batch in read_events(path, counts, progress, src):
            _send(out, counts, told, [event_row(e) for e in batch])
            told = len(counts.errors)
        _send(out, counts, told, None)
        out.flush()
    except BrokenPipeError:  # the replay stopped before the end: nobody to tell
        pass
    except OSError as e:  # the file (unreadable, gone): raised again in the replay, as in-process
        _send(out, counts, told, (e.errno, e.strerror, e.filename))
        out.flush()
    return 0


def child(argv: list[str]) -> NoReturn:
    """The child process's program (`_CHILD`)."""
    from correlator.cli import defer_prometheus_exposition

    defer_prometheus_exposition()  # before anything imports the metrics: the child serves none
    main(argv)
    # At once: the replay waits for this exit after the last frame, and the interpreter's
    # clean-up (every object freed one by one) would only delay it.
    os._exit(0)
