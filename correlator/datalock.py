"""One process per data directory: an OS file lock (`flock`) on `DATA_DIR/correlator.lock`.

The daemon takes it before it opens any store and holds it for the life of the process; the kernel
drops it when the process ends, however it ends, so a crash never leaves a stale lock behind.
`correlator restore` takes the same lock, so it never replaces the files of a running daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from correlator.errors import CorrelatorError

LOCK_FILE = "correlator.lock"


class DataDirInUse(CorrelatorError):
    """Another process holds the data directory's lock."""


class DataDirLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


def acquire(data_dir: Path, purpose: str = "correlator") -> DataDirLock:
    """Lock `data_dir` (created if missing) or raise DataDirInUse naming the holder's pid."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise DataDirInUse(
            f"data directory {data_dir} is in use by another correlator process{holder}"
            f" (lock {path}); stop it first or choose another storage.data_dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # The pid is for people reading the file; the lock itself is the flock, not the content.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
    return DataDirLock(fd, path)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        words = os.pread(fd, 64, 0).decode().split()
        if words:
            return f" (pid {int(words[0])})"
    return ""
