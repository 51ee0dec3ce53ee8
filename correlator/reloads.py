"""Reloads of the files operators edit while the daemon runs: one file watcher and one entry point
(SIGHUP, POST /api/v1/rules/reload) for every target.

Each target parses its own files and keeps its last good version when they are broken: the services
file (availability/reload.py), the rules and the inventory (rules/reload.py), the maintenance
calendar (changes/reload.py).

A reload of files whose content equals what the target last attempted is a no-op (the last outcome
is answered again, nothing is counted): the watcher and SIGHUP or the API often see the same save,
and one save must be one reload, one failure counted, one audit note.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from watchfiles import Change, awatch

log = logging.getLogger(__name__)


class Outcome(Protocol):
    @property
    def ok(self) -> bool: ...

    def as_dict(self) -> dict[str, object]: ...


class Target(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def last(self) -> Outcome | None: ...

    def watched(self) -> list[Path]:
        """Directories (watched recursively) and files whose change calls for a reload."""
        ...

    def owns(self, path: Path) -> bool:
        """Whether a change of `path` (absolute, symlinks resolved) concerns this target."""
        ...

    async def reload(self, trigger: str) -> Outcome: ...


class Reloads:
    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)
        # Per target: the fingerprint of the files of its last finished reload, and a lock so that
        # the watcher and SIGHUP seeing the same save cannot both find it new.
        self._attempted: dict[str, bytes] = {}
        self._locks = {t.name: asyncio.Lock() for t in self.targets}

    async def reload(self, trigger: str) -> dict[str, Outcome]:
        """Every target in turn (SIGHUP, the API): a broken file keeps only its own target's last good set."""
        return {t.name: await self.reload_target(t, trigger) for t in self.targets}

    async def reload_target(self, target: Target, trigger: str) -> Outcome:
        """Reload `target` unless its files are byte for byte those of its last reload (then answer
        that reload's outcome again, counted neither as a success nor as a failure)."""
        async with self._locks[target.name]:
            fingerprint = await asyncio.to_thread(_fingerprint, target)
            last = target.last
            if last is not None and self._attempted.get(target.name) == fingerprint:
                log.info(
                    "%s reload (%s): files unchanged since the last reload; nothing to do",
                    target.name,
                    trigger,
                )
                return last
            outcome = await target.reload(trigger)
            # Recorded only once the attempt finished: one that raised (the record store down) is
            # tried again by the next reload of the same files.
            self._attempted[target.name] = fingerprint
            return outcome

    async def watch(self, debounce_ms: int = 200) -> None:
        """Reload a target whenever one of its files changes; falls back to polling without inotify."""
        for force_polling in (False, True):
            try:
                while await self._watch(debounce_ms, force_polling):
                    pass
                return
            except (OSError, RuntimeError) as e:
                if force_polling:
                    raise
                log.warning("reload: file notifications unavailable (%s); polling for changes instead", e)

    async def _watch(self, debounce_ms: int, force_polling: bool) -> bool:
        """Watch until a watched file is replaced or a reload changed what is to be watched (True:
        watch again), or the watcher ends."""
        paths = self._paths(warn=True)
        if not paths:
            return False
        files = {p for p in paths if not p.is_dir()}
        async for changes in awatch(
            *paths, watch_filter=self._relevant, debounce=debounce_ms, force_polling=force_polling
        ):
            changed = {Path(p) for _, p in changes}
            for t in self.targets:
                if any(t.owns(p) for p in changed):
                    await self._reload_logged(t, "file change")
            # Editors and configuration tools save by renaming a new file over the old one, and a
            # file watch follows the old one: watch the path again.
            if any(kind is Change.deleted and Path(p) in files for kind, p in changes):
                return True
            if self._paths(warn=False) != paths:  # e.g. a topology rule now reads another file
                return True
        return False

    def _paths(self, warn: bool) -> list[Path]:
        paths = []
        for t in self.targets:
            for p in t.watched():
                if p.exists():
                    paths.append(p.resolve())
                elif warn:
                    log.warning(
                        "reload: %s does not exist; not watching it (SIGHUP and the API reload it)", p
                    )
        return paths

    def _relevant(self, change: Change, path: str) -> bool:
        return any(t.owns(Path(path)) for t in self.targets)

    async def _reload_logged(self, target: Target, trigger: str) -> None:
        try:
            await self.reload_target(target, trigger)
        except Exception:  # e.g. the record store down: the watcher must keep watching
            log.exception("reload: %s %s failed", target.name, trigger)


def _fingerprint(target: Target) -> bytes:
    """A digest of the names and contents of every file of `target` (the files of its watched
    directories that it owns); a missing or unreadable file counts as such, not as empty."""
    digest = hashlib.blake2b(digest_size=16)
    for path in target.watched():
        files = sorted(f for f in path.rglob("*") if target.owns(f.resolve())) if path.is_dir() else [path]
        for file in files:
            try:
                content = file.read_bytes()
            except OSError as e:  # a directory among rglob's answers, a vanished or unreadable file
                content = f"<{type(e).__name__}>".encode()
            name = str(file).encode()
            digest.update(len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big") + content)
    return digest.digest()
