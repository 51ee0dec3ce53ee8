"""Applying an edit to a record that other processes may save too (optimistic concurrency).

A service edits its copy of a record and saves it naming the version the copy was read at; when the
store refuses (RecordConflict: another process saved since, docs/cluster.md), the stored version is
read again and the same edit applied to it. The edit decides on that fresh copy whether it still
applies: it returns the log entry of what it did, None when there is nothing left to do (the
incident is linked already), or raises IllegalTransition (approving what is approved meanwhile).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from correlator.errors import IllegalTransition
from correlator.records.store import CONFLICTS, Kind, LogEntry, RecordConflict, RecordStore

log = logging.getLogger(__name__)

# Saves of one edit; the records are saved seconds apart at most, so several conflicts in a row
# mean something is wrong (the edit then fails with RecordConflict rather than spinning).
ATTEMPTS = 5


class Versioned(Protocol):
    id: int
    version: int

    @property
    def human_id(self) -> str: ...


class Stored(Versioned, Protocol):
    @property
    def state(self) -> enum.StrEnum: ...

    def to_doc(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Versioned)


async def save_record(
    store: RecordStore, kind: Kind, rec: Stored, at: float, entries: list[LogEntry]
) -> None:
    """Insert (id 0) or update the record at the version it was read at; its id and version follow."""
    new = rec.id == 0
    rec.id = await store.save(kind, rec.id, rec.state.value, rec.to_doc(), at, entries, version=rec.version)
    rec.version = 1 if new else rec.version + 1


async def apply_edit(
    kind: Kind,
    rec: R,
    edit: Callable[[R], Awaitable[LogEntry | None]],
    save: Callable[[R, LogEntry], Awaitable[None]],
    reread: Callable[[int], Awaitable[R]],
) -> R:
    """Apply `edit` to `rec` (in place) and `save` it; on a conflict `reread` the stored version (the
    caller's memory takes it) and apply `edit` to that, at most ATTEMPTS saves. Returns the copy
    saved, or the one `edit` found nothing to do on."""
    conflicts = 0
    while True:
        try:
            entry = await edit(rec)
        except IllegalTransition:
            if conflicts:
                CONFLICTS.labels(kind, "refused").inc()
            raise
        if entry is None:
            if conflicts:  # the stored version needs nothing more (the incident is linked already)
                CONFLICTS.labels(kind, "nothing_left").inc()
            return rec
        try:
            await save(rec, entry)
            break
        except RecordConflict as e:
            conflicts += 1
            fresh = await reread(rec.id)
            if conflicts >= ATTEMPTS:
                CONFLICTS.labels(kind, "refused").inc()
                raise RecordConflict(kind, rec.id, fresh.version) from e
            log.info(
                "%s was saved by another process (version %d, this copy %d): %s applied to it again",
                rec.human_id, fresh.version, rec.version, entry.action,
            )  # fmt: skip
            rec = fresh
    if conflicts:
        CONFLICTS.labels(kind, "reapplied").inc()
    return rec
