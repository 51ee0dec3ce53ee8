"""`correlator backup` / `restore`: every database of the data directory, copied consistently.

Each SQLite file is copied with SQLite's online backup API, which reads one consistent snapshot of
the file while the daemon goes on writing it. Files are copied in the order events flow (journal,
then the event store, then what is derived from events), so an event acknowledged between two
copies is in the journal copy or in the event store copy, never in neither; what is in both is
acknowledged again at start without being counted twice (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from correlator import __version__, datalock
from correlator.errors import CorrelatorError
from correlator.event import iso

# The databases the daemon keeps, in the order they are copied (see the module docstring). Any other
# SQLite file found in the directory is copied after them, any other file or directory (the compiled
# MIB cache) plainly.
ORDER = (
    "journal.db",  # accepted, not yet processed
    "events.db",  # the event store
    "incidents.db",
    "records.db",  # changes, problems, known errors
    "correlation.db",  # level-2 state (pending pairs, windows, heartbeats)
    "availability.db",  # outage history behind the SLA figures
    "outbox.db",  # webhook notices not yet delivered
)
MANIFEST = "correlator-backup.json"
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".restoring")
_SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(CorrelatorError):
    """The backup or restore cannot be done as asked; nothing was replaced."""


@dataclass(frozen=True, slots=True)
class Copied:
    name: str
    sqlite: bool
    size: int


def backup(data_dir: Path, dest: Path) -> list[Copied]:
    """Copy every file the daemon keeps in `data_dir` into `dest` (new or empty), with a manifest."""
    if not data_dir.is_dir():
        raise BackupError(f"no data directory at {data_dir}")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give a new directory for each backup")
    if dest.resolve() == data_dir.resolve() or data_dir.resolve() in dest.resolve().parents:
        raise BackupError(f"{dest} is inside the data directory {data_dir}")
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[Copied] = []
    for path in _contents(data_dir):
        target = dest / path.name
        if _is_sqlite(path):
            _sqlite_copy(path, target)
        elif path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        copied.append(Copied(path.name, _is_sqlite(path), _size(target)))
    manifest = {
        "version": __version__,
        "created_at": iso(time.time()),
        "data_dir": str(data_dir.resolve()),
        "files": [{"name": c.name, "sqlite": c.sqlite, "bytes": c.size} for c in copied],
    }
    (dest / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return copied


def restore(src: Path, data_dir: Path, force: bool = False) -> list[Copied]:
    """Put a backup in place in `data_dir`; refuses while a daemon uses it, or over data without force."""
    files = _manifest_files(src)
    lock = datalock.acquire(data_dir, "correlator restore")  # raises DataDirInUse while a daemon runs
    try:
        present = [n for n in files if (data_dir / n).exists()]
        if present and not force:
            raise BackupError(
                f"{data_dir} already holds {', '.join(present)}: add --force to replace them with the backup"
            )
        restored: list[Copied] = []
        for name in files:
            source, target = src / name, data_dir / name
            if not source.exists():
                raise BackupError(f"{source}: listed in {MANIFEST} but missing")
            if _is_sqlite(source):
                staging = target.with_name(target.name + ".restoring")
                _sqlite_copy(source, staging)
                # A -wal left beside the old file would be replayed into the restored one.
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{target}{suffix}")
                os.replace(staging, target)
            elif source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            restored.append(Copied(name, _is_sqlite(target), _size(target)))
        return restored
    finally:
        lock.release()


def _contents(data_dir: Path) -> list[Path]:
    def rank(p: Path) -> tuple[int, int, str]:
        if p.name in ORDER:
            return (0, ORDER.index(p.name), p.name)
        return (1 if _is_sqlite(p) else 2, 0, p.name)

    found = [
        p
        for p in data_dir.iterdir()
        if p.name != datalock.LOCK_FILE
        and not p.name.endswith(_SKIP_SUFFIXES)
        and (p.is_file() or p.is_dir())
    ]
    return sorted(found, key=rank)


def _manifest_files(src: Path) -> list[str]:
    try:
        doc = orjson.loads((src / MANIFEST).read_bytes())
        names = [str(f["name"]) for f in doc["files"]]
    except FileNotFoundError:
        raise BackupError(f"{src}: not a correlator backup (no {MANIFEST})") from None
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise BackupError(f"{src / MANIFEST}: unreadable manifest: {e}") from None
    if any("/" in n or n in ("", ".", "..") for n in names):
        raise BackupError(f"{src / MANIFEST}: a file name is not a plain name")
    return names


def _sqlite_copy(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one consistent snapshot, while the daemon writes on
            row = dst.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise BackupError(f"{target}: the copy of {source} fails SQLite's check: {row}")
            # Not in WAL: the copy is one self-contained file; the daemon sets WAL again on open.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as e:
        raise BackupError(f"{source}: cannot copy: {e}") from None
    finally:
        src.close()


def _is_sqlite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(16) == _SQLITE_MAGIC


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
