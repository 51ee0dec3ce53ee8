"""A recording read in a second process while this one correlates.

Reading a line (orjson, the door's checks, the id derived from the line, the fingerprint, the event
built) costs this process about as much as both rule levels at 1,000 rules. So for a recording of
some size on a machine with a CPU to spare, a child process reads it with the very function replay
runs in-process (`recording.read_events`) and sends the events over a pipe; rebuilding an event
from its row costs this process about a fifth of reading its line. The events, their order, the
counts and the error messages are the same either way (tests compare them).

The child is `python -P -c <_CHILD> HOME FILE FD [--progress]`, writing its frames to the pipe FD
(its stdout is the replay's stderr). A frame is a 4-byte little-endian length, then a marshal'd
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
    """Whether to read `path` in a second process: big enough, and this process may use two CPUs."""
    try:
        return path.stat().st_size >= PARALLEL_MIN_BYTES and len(os.sched_getaffinity(0)) > 1
    except (OSError, AttributeError):  # no such file (reported later), or no affinity call here
        return False


class Reader:
    """The child reading one recording, started at once: it reads while the caller starts up."""

    def __init__(self, path: Path, progress: bool) -> None:
        """Raises OSError when no process can be started (the caller then reads in-process)."""
        self.path = path
        # Frames come on a pipe of their own: whatever else the child's start-up prints (a
        # sitecustomize, a library) goes to its stdout, which is this process's stderr, and can
        # neither corrupt a frame nor the report this process writes to its stdout. The write
        # end above 2: a replay started with its standard descriptors closed gets the lowest free
        # ones from os.pipe, which the child's stdin, stdout and stderr would take over.
        import fcntl  # here: Linux and the like only, as `worthwhile` is

        r, low = os.pipe()
        try:
            w = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 3)
        finally:
            os.close(low)
        # The parent's interpreter flags (-X, -W, -O ...), and -P: never the current directory
        # first on the path, where a stray hashlib.py or correlator/ would be imported instead.
        # The package's own directory comes first on the child's path instead (unless it is a
        # site directory): the child runs this very code, under -E and -I too.
        home = str(Path(correlator.__file__).resolve().parents[1])
        cmd = [sys.executable, *_interpreter_flags(), "-P", "-c", _CHILD]
        cmd += ["" if home in _site_dirs() else home, os.fspath(path), str(w)]
        if progress:
            cmd.append("--progress")
        try:
            with _sigint_ignored():  # the child starts with Ctrl-C ignored, and Python keeps it so
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr.fileno() if _has_fd(sys.stderr) else subprocess.DEVNULL,
                    pass_fds=(w,),
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
                    self._proc.wait()  # the child exits right after its last frame
                    if rows is not None:
                        raise OSError(*rows)
                    break
                counts.events_in += len(rows)
                yield events_from_rows(rows)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child (whether or not it finished) and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._frames.close()

    def _ended_early(self, why: str = "") -> NoReturn:
        if why:
            self._proc.kill()
        rc = self._proc.wait()
        raise CorrelatorError(
            f"replay: reading {self.path} failed: " + (why or f"the reading process ended with status {rc}")
        )


# The child's program: its first argument is a directory to put first on the path (or nothing).
_CHILD = (
    "import sys; home = sys.argv.pop(1); home and sys.path.insert(0, home); "
    "from correlator.recording_process import child; child(sys.argv[1:])"
)


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


def _site_dirs() -> set[str]:
    import site

    return {str(Path(d).resolve()) for d in [*site.getsitepackages(), site.getusersitepackages()]}


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
    """The child: read the recording `argv[0]`, write frames to the file descriptor `argv[1]`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited so already, unless started elsewhere
    from correlator.recording import ReadCounts, read_events

    path = Path(argv[0])
    progress = sys.stderr if "--progress" in argv[2:] else None
    out = os.fdopen(int(argv[1]), "wb")
    import fcntl

    with contextlib.suppress(AttributeError, OSError):  # not Linux, or above the cap: as it is
        fcntl.fcntl(out.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    counts = ReadCounts()
    told = 0
    try:
        for batch in read_events(path, counts, progress):
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
