"""Rule files as read by the YAML loader, kept on disk by content hash: a new process skips YAML.

The loader (loader.py) asks here before reading a file without positions (`yamlfile.loads_bare`).
An entry is the file's plain data, written with `marshal` (values only: no code is ever stored or
run), under a name hashed from the text, this format, PyYAML's and the correlator's versions and
the loader's own code; so a changed file, or another version reading it, never finds a stale
entry. Where: the directory in CORRELATOR_CACHE_DIR (empty: no cache), else
$XDG_CACHE_HOME/correlator/rules, else ~/.cache/correlator/rules. A directory that cannot be
written is simply not used. It is pruned at a process's first write and again after every
MAX_ENTRIES // 2 entries it writes (edited files at reloads), so a daemon reloading for months
keeps it bounded, at the cost of one directory scan per MAX_ENTRIES // 2 new entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import marshal
import os
from pathlib import Path
from typing import Any

from correlator import __version__, yamlfile
from correlator.yamlfile import Position, YamlMap

FORMAT = 2  # raise when loads_bare's output changes shape
MAX_ENTRIES = 4096  # beyond, the older half is removed (checked at the first write, then every half)


def _loader_source() -> bytes:
    """The code that makes an entry: an edited loader (a developer's checkout, where the version
    stays the same) never reads the entries of the one before. With it PyYAML's __init__, which
    holds its version: read, not imported, since a process whose rule files are all here never
    imports PyYAML (yamlfile.py)."""
    spec = importlib.util.find_spec("yaml")
    files = (yamlfile.__file__, __file__, spec.origin if spec is not None else None)
    return b"".join(_source(m) for m in files)


def _source(path: str | None) -> bytes:
    """One file's bytes, or none: a file that cannot be read (PyYAML from a zip) leaves the others
    in the salt."""
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


log = logging.getLogger(__name__)

_SALT = f"\0{FORMAT}\0{__version__}\0".encode() + hashlib.blake2b(_loader_source(), digest_size=16).digest()


def load_bare(text: str, file: str) -> Any:
    """`yamlfile.loads_bare(text, file)`, from the cache when this text was read before."""
    where = _directory()
    if where is None or not _private(where):
        return yamlfile.loads_bare(text, file)
    entry = where / (hashlib.blake2b(text.encode() + _SALT, digest_size=20).hexdigest() + ".bin")
    kept = _read(entry, file)
    if kept is not None:
        return kept
    doc = yamlfile.loads_bare(text, file)
    frozen = _freeze(doc)
    if frozen is not None:
        _store(where, entry, frozen)
    return doc


def _read(entry: Path, file: str) -> Any:
    """The entry's data, or None when there is none yet or it is damaged in any way."""
    try:
        # Plain values this module wrote: marshal makes no objects but those, and runs nothing.
        raw = entry.read_bytes()
        digest, payload = raw[:_DIGEST], raw[_DIGEST:]
        if digest != hashlib.blake2b(payload, digest_size=_DIGEST).digest():
            return None  # damaged on disk (or cut short): read as YAML again
        return _thaw(marshal.loads(payload), file)  # noqa: S302
    except Exception:
        return None


def _freeze(doc: Any) -> Any:
    """(data, starts) with the rule mappings made plain dicts and their starts as (line, column);
    None when marshal cannot hold the data (dates and times)."""
    starts: dict[str, list[tuple[int, int] | None]] = {}
    data = doc
    if isinstance(doc, dict):
        data = dict(doc)
        for key, value in doc.items():
            if isinstance(value, list):
                data[key] = [dict(v) if isinstance(v, YamlMap) else v for v in value]
                starts[key] = [_start(v) for v in value]
    try:
        return marshal.dumps((data, starts))
    except ValueError:
        return None


def _start(item: Any) -> tuple[int, int] | None:
    if not isinstance(item, YamlMap):
        return None
    p = item.position
    return p.line, p.column


def _thaw(entry: Any, file: str) -> Any:
    data, starts = entry
    for key, where in starts.items():
        items = data[key]
        if len(items) != len(where):
            raise ValueError("a damaged entry")
        for i, start in enumerate(where):
            if start is not None:
                m = YamlMap(items[i])
                m._file = file
                m.placed = False
                m.position = Position(file, start[0], start[1])
                items[i] = m
    return data


def _store(where: Path, entry: Path, frozen: bytes) -> None:
    global _checked, _written
    if _checked == "unusable":
        return
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}")
    try:
        if not _checked or _written >= MAX_ENTRIES // 2:
            _prune(where)  # made by _private; if it is gone since, the write fails: unusable
            _checked, _written = "yes", 0
        tmp.write_bytes(hashlib.blake2b(frozen, digest_size=_DIGEST).digest() + frozen)
        os.replace(tmp, entry)  # whole or not at all, whoever reads it meanwhile
        _written += 1
    except OSError:
        _checked = "unusable"  # read-only, full, gone: this process reads YAML as before
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _prune(where: Path) -> None:
    entries = [e for e in os.scandir(where) if e.name.endswith(".bin")]
    if len(entries) > MAX_ENTRIES:
        entries.sort(key=_mtime)
        for e in entries[: len(entries) // 2]:
            Path(e.path).unlink(missing_ok=True)


def _mtime(e: os.DirEntry[str]) -> float:
    try:
        return e.stat().st_mtime
    except OSError:  # pruned meanwhile by another process
        return 0.0


_checked = ""  # "": not yet; "yes": the directory exists and was pruned; "unusable"
_written = 0  # entries this process wrote since it last pruned
_DIGEST = 16  # bytes of blake2b over an entry's payload, written before it
_trusted: dict[Path, bool] = {}


def _private(where: Path) -> bool:
    """Entries are read back as rules, so the directory must be this user's alone: an existing
    one owned by someone else or writable by group or others is not used (once per process). A
    missing one is made (0700) before it is judged, not trusted for being missing."""
    ok = _trusted.get(where)
    if ok is None:
        try:
            # One made by someone else between a check and our mkdir is judged as it is.
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = where.stat()
        except OSError:
            ok = False  # cannot be made (read-only, a file in the way): unusable, not a risk
        else:
            ok = st.st_uid == os.geteuid() and not st.st_mode & 0o022
            if not ok:
                log.warning("rule parse cache %s is not private to this user: not used", where)
        _trusted[where] = ok
    return ok


def _directory() -> Path | None:
    configured = os.environ.get("CORRELATOR_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "correlator" / "rules"
