"""Where a partition's level-2 snapshot is kept: `l2.<p>` in the state bucket is its fence and,
when the snapshot is small, the snapshot itself; a larger one goes to the object store
`<stream>_snapshots`, in chunks, and `l2.<p>` names it. A NATS message (so a bucket value) holds
at most the server's max_payload, 1 MiB by default; an object has no such bound.

Every write of `l2.<p>` is revision-checked: the next owner rewrites the key when it takes the
partition, so an old owner that wakes up can neither point it at its own object nor put its state
back. An object is written under a name no other write uses (the revision it replaces), before the
pointer; one the pointer never came to name (fenced out, NATS failing) is removed, and the new owner
of a partition sweeps whatever a dead owner left behind.
"""

from __future__ import annotations

import base64
import logging

from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_META_PRE_TEMPLATE, ObjectStore

from correlator.cluster.bus import Bus

log = logging.getLogger(__name__)

EMPTY = b"none"  # `l2.<p>` created before any snapshot: the partition's fence, no state yet
INLINE_MAX = 256 * 1024  # larger encoded snapshots go to the object store
_POINTER = b"obj:"  # a value naming an object; an inline snapshot is zlib data (starts with 0x78)


def snapshot_key(p: int) -> str:
    return f"l2.{p}"


class SnapshotSlots:
    """The `l2.<p>` keys this worker holds (the revision it wrote or took) and the objects they name."""

    def __init__(self, bus: Bus, inline_max: int = INLINE_MAX) -> None:
        self._bus = bus
        self._kv = bus.state
        self.inline_max = inline_max
        self._bucket = f"{bus.settings.stream}_snapshots"
        self._objects: ObjectStore | None = None
        self._revisions: dict[int, int] = {}  # partition -> revision of `l2.<p>` we wrote or took
        self._named: dict[int, str] = {}  # partition -> the object `l2.<p>` names now

    def holds(self, p: int) -> bool:
        return p in self._revisions

    def held(self) -> set[int]:
        return set(self._revisions)

    def forget(self, p: int) -> None:
        self._revisions.pop(p, None)
        self._named.pop(p, None)

    async def take(self, p: int) -> bytes | None:
        """Fence `l2.<p>` (rewrite it: the previous owner's writes are refused from now on) and
        return the snapshot it holds or names; None when there is none yet."""
        key = snapshot_key(p)
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            self._revisions[p] = await self._kv.create(key, EMPTY)
            self._named.pop(p, None)
            return None
        raw = entry.value or EMPTY
        self._revisions[p] = await self._kv.update(key, raw, last=entry.revision)
        name = _pointed(raw)
        if name is None:
            self._named.pop(p, None)
            return None if raw == EMPTY else raw
        self._named[p] = name
        objects = await self._store()
        await self._sweep(objects, p, keep=name)
        return bytes((await objects.get(name)).data or b"")

    async def write(self, p: int, data: bytes) -> bool:
        """Make `data` the snapshot of `p`; False when this worker no longer holds the key (not
        written). Raises on a NATS failure: the previous snapshot then stays valid."""
        rev = self._revisions.get(p)
        if rev is None:
            return False
        name: str | None = None
        value = data
        if len(data) > self.inline_max:
            name = f"{snapshot_key(p)}.{rev}"  # a revision is written over once: no other writer uses it
            await (await self._store()).put(name, data)
            value = _POINTER + name.encode()
        try:
            self._revisions[p] = await self._kv.update(snapshot_key(p), value, last=rev)
        except KeyWrongLastSequenceError:
            self.forget(p)
            await self._remove(name)
            return False
        except BaseException:
            await self._remove(name)
            raise
        old = self._named.pop(p, None)
        if name is not None:
            self._named[p] = name
        if old is not None and old != name:
            await self._remove(old)
        return True

    async def _store(self) -> ObjectStore:
        if self._objects is None:
            s = self._bus.settings
            config = ObjectStoreConfig(replicas=s.replicas, storage=StorageType.FILE)
            self._objects = await self._bus.js.create_object_store(self._bucket, config=config)
        return self._objects

    async def _sweep(self, objects: ObjectStore, p: int, keep: str) -> None:
        """Remove the objects of `p` the pointer does not name: written by an owner that died or
        was fenced out between its object and its pointer."""
        prefix = f"{snapshot_key(p)}."
        try:
            infos = await objects.list(ignore_deletes=True)
        except NotFoundError:
            return
        for info in infos:
            if info.name and info.name.startswith(prefix) and info.name != keep:
                await self._remove(info.name)

    async def _remove(self, name: str | None) -> None:
        """Purge an object's chunks and its meta message: nothing of it stays in the stream (a
        delete would leave a marker per name, and every snapshot has a name of its own)."""
        if name is None:
            return
        try:
            objects = await self._store()
            info = await objects.get_info(name, show_deleted=True)
            stream = f"OBJ_{self._bucket}"
            meta = OBJ_META_PRE_TEMPLATE.format(bucket=self._bucket, obj=_b64(name))
            if info.nuid:
                chunks = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self._bucket, obj=info.nuid)
                await self._bus.js.purge_stream(stream, subject=chunks)
            await self._bus.js.purge_stream(stream, subject=meta)
        except NotFoundError:
            return
        except Exception as e:  # left for the sweep of the partition's next owner
            log.warning("level-2 snapshot object %s not removed: %s: %s", name, type(e).__name__, e)


def _pointed(raw: bytes) -> str | None:
    return raw[len(_POINTER) :].decode() if raw.startswith(_POINTER) else None


def _b64(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()
