"""The event store's file: 16 KiB pages for a new file, WAL checkpoints beside the writer, bounded WAL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from correlator.event import Event, Severity
from correlator.store.checkpoint import WalCheckpointer
from correlator.store.sqlite import MIGRATIONS, SqliteEventStore, open_sqlite

REPO = Path(__file__).resolve().parents[3]
WAL_HEADER = 32


def batch(start: int, n: int) -> list[Event]:
    """Events with hashed ids, as Alertmanager's: each batch writes into index pages all over the file."""
    out = []
    for i in range(start, start + n):
        ident = hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()
        out.append(Event(ident, 1000.0 + i, 1000.0 + i, "test", f"h{i % 300}", "T", Severity.MINOR))
    return out


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA page_size").fetchone()[0])


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wal-checkpoint")]


async def test_a_new_file_has_16_kib_pages(tmp_path):
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    await store.write(batch(0, 10))
    await store.close()
    assert page_size(tmp_path / "events.db") == 16384


async def test_an_existing_4_kib_file_keeps_its_pages_and_works(tmp_path):
    path = tmp_path / "events.db"
    db = await open_sqlite(path, MIGRATIONS, ("synchronous=NORMAL",))  # as files were made before
    await db.execute(
        "INSERT INTO events(id, time, host, type, severity, source, fingerprint, body)"
        " VALUES ('old', 1, 'h', 'T', 'minor', 'test', 'f', '{}')"
    )
    await db.close()
    assert page_size(path) == 4096
    store = SqliteEventStore(path, checkpoint_bytes=64 << 10, hard_bytes=256 << 10)
    await store.open()
    for k in range(0, 2000, 200):
        await store.write(batch(k, 200))
    assert await store.count() == 2001
    assert store.checkpoints.checkpoints > 0  # the checkpointer read the 4 KiB frames' size
    await store.close()
    assert page_size(path) == 4096


async def write_tracking(store: SqliteEventStore, k: int, drain: bool = False) -> int:
    """Write a batch of 200; the bytes of WAL frames the write itself added."""
    before = store.checkpoints.wal()[0]
    await store.write(batch(k, 200))
    after = store.checkpoints.wal()[0]
    if drain:
        await store.checkpoints.drain()
    return after - before if after >= before else after  # (smaller: the write restarted the WAL)


async def test_the_wal_stays_under_its_bound_plus_a_batch(tmp_path):
    path = tmp_path / "events.db"
    hard = 512 << 10
    store = SqliteEventStore(path, checkpoint_bytes=128 << 10, hard_bytes=hard)
    await store.open()
    peak = largest = 0
    for k in range(0, 12_000, 200):
        largest = max(largest, await write_tracking(store, k))
        peak = max(peak, wal_size(path))
    # However the checkpointer's thread was scheduled: past the hard bound the writer waits, so
    # only the write that crossed it goes past.
    assert peak <= hard + largest + WAL_HEADER, (peak, hard, largest)
    assert peak > hard  # the bound was reached, and held
    assert store.checkpoints.checkpoints > 0 and store.checkpoints.stalls > 0
    assert await store.count() == 12_000
    await store.close()


async def test_checkpoints_drained_after_each_write_keep_the_wal_near_the_soft_bound(tmp_path):
    path = tmp_path / "events.db"
    soft = 128 << 10
    store = SqliteEventStore(path, checkpoint_bytes=soft, hard_bytes=8 << 20)
    await store.open()
    peak = largest = 0
    for k in range(0, 6000, 200):
        # the checkpointer keeps up: the write after a checkpoint restarts the WAL
        largest = max(largest, await write_tracking(store, k, drain=True))
        peak = max(peak, wal_size(path))
    assert peak <= soft + largest + WAL_HEADER, (peak, soft, largest)
    assert store.checkpoints.checkpoints > 0 and store.checkpoints.stalls == 0
    await store.close()


async def test_a_reader_holding_a_snapshot_makes_the_wal_grow_until_it_ends(tmp_path):
    path = tmp_path / "events.db"
    hard = 256 << 10
    store = SqliteEventStore(path, checkpoint_bytes=64 << 10, hard_bytes=hard)
    await store.open()
    await store.write(batch(0, 200))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events").fetchone()  # a backup or a report, say
    for k in range(200, 4000, 200):
        await store.write(batch(k, 200))
    held = wal_size(path)
    assert held > 2 * hard  # no checkpoint can restart a WAL a reader is in
    reader.execute("COMMIT")
    reader.close()
    for k in range(4000, 6000, 200):
        await store.write(batch(k, 200))
    await store.checkpoints.drain()
    await store.write(batch(6000, 1))  # restarts the WAL and gives its disk back (journal_size_limit)
    assert wal_size(path) <= hard
    assert await store.count() == 6001
    await store.close()


async def test_close_ends_the_checkpointer_and_the_last_close_checkpoints_everything(tmp_path):
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=64 << 10, hard_bytes=1 << 20)
    await store.open()
    for k in range(0, 2000, 200):
        await store.write(batch(k, 200))
    assert checkpoint_threads()
    await store.close()
    assert not checkpoint_threads()
    assert not Path(f"{path}-wal").exists()  # the writer's close, the last, copied and removed it
    await store.close()  # twice is harmless


async def test_a_store_that_only_reads_starts_no_checkpointer(tmp_path):
    store = SqliteEventStore(tmp_path / "events.db")
    await store.open()
    await store.count()
    await store.close()
    assert store.checkpoints.checkpoints == 0 and not checkpoint_threads()


async def test_a_failed_checkpoint_is_logged_and_the_writes_go_on(tmp_path, caplog):
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=16 << 10, hard_bytes=64 << 10)
    await store.open()

    def fail() -> tuple[int, int, int]:
        raise sqlite3.OperationalError("disk I/O error")

    store.checkpoints._checkpoint = fail  # type: ignore[method-assign]
    for k in range(0, 1000, 200):
        await store.write(batch(k, 200))
    await store.checkpoints.drain()
    assert await store.count() == 1000
    assert "WAL checkpoint" in caplog.text and "disk I/O error" in caplog.text
    await store.close()  # the writer's last close copies the WAL all the same
    assert not Path(f"{path}-wal").exists()


def test_the_checkpointer_refuses_bounds_out_of_order(tmp_path):
    import pytest

    with pytest.raises(ValueError):
        WalCheckpointer(tmp_path / "x.db", 2 << 20, 1 << 20, "x")


_CHILD = """
import asyncio, hashlib, os, signal, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from correlator.event import Event, Severity
from correlator.store.sqlite import SqliteEventStore

async def main():
    store = SqliteEventStore(Path({path!r}), checkpoint_bytes=32 << 10, hard_bytes=256 << 10)
    await store.open()
    for k in range(0, 6000, 200):
        events = [Event(hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest(), 1000.0 + i,
                        1000.0 + i, "test", f"h{{i % 300}}", "T", Severity.MINOR) for i in range(k, k + 200)]
        await store.write(events)
        print(k + 200, flush=True)  # acknowledged
        if k == 4000:
            store.checkpoints._start()  # a checkpoint under way when the process dies
            os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_what_was_acknowledged_is_there_after_a_kill_during_a_checkpoint(tmp_path):
    path = tmp_path / "events.db"
    child = _CHILD.format(repo=str(REPO), path=str(path))
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", textwrap.dedent(child)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acknowledged = int(proc.stdout.split()[-1])
    assert acknowledged == 4200
    assert os.path.exists(f"{path}-wal")  # the kill left frames no checkpoint had copied
    store = SqliteEventStore(path)
    await store.open()
    assert await store.count() == acknowledged
    await store.close()


async def test_the_incident_store_checkpoints_beside_its_writer_and_bounds_its_wal(tmp_path):
    from correlator.clock import Clock
    from correlator.incidents.service import IncidentService
    from correlator.incidents.settings import parse_settings
    from correlator.incidents.sqlite_store import SqliteIncidentStore
    from tests.unit.incidents.conftest import T0, request

    path = tmp_path / "incidents.db"
    store = SqliteIncidentStore(path)
    store.checkpoints = WalCheckpointer(path, 64 << 10, 256 << 10, "incidents")
    svc = IncidentService(store, parse_settings({}), Clock(T0))
    await svc.open()
    try:
        assert list(await store.db.execute_fetchall("PRAGMA wal_autocheckpoint")) == [(0,)]
        peak = 0
        for b in range(20):
            await svc.apply([request("open", T0, key=f"k{b}-{i}", host=f"h{i}") for i in range(100)])
            await svc.settled()
            peak = max(peak, wal_size(path))
        assert store.checkpoints.checkpoints > 0
        assert peak < 2 << 20  # without checkpoints: ~6 MiB
    finally:
        await svc.close()
    assert not checkpoint_threads() and not Path(f"{path}-wal").exists()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM incidents").fetchone() == (2000,)


async def test_a_symlinked_file_is_checkpointed_where_sqlite_keeps_its_wal(tmp_path):
    """SQLite follows a symlinked database to its target and keeps -wal and -shm beside it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "events.db").symlink_to(tmp_path / "real" / "events.db")
    path = tmp_path / "data" / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=128 << 10, hard_bytes=512 << 10)
    await store.open()
    for k in range(0, 6000, 200):
        await store.write(batch(k, 200))
        await store.checkpoints.drain()
    assert store.checkpoints.checkpoints > 0
    assert wal_size(tmp_path / "real" / "events.db") < 4 << 20
    await store.close()


async def test_without_the_wal_index_sqlite_checkpoints_in_the_writer_and_the_wal_stays_bounded(
    tmp_path, caplog
):
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=128 << 10, hard_bytes=512 << 10)
    await store.open()
    store.checkpoints._real = str(tmp_path / "elsewhere")  # no -shm there: the index cannot be read
    peak = 0
    for k in range(0, 12_000, 200):  # never a pause for a checkpoint beside the writer
        await store.write(batch(k, 200))
        peak = max(peak, wal_size(path))
    assert "cannot read the WAL index" in caplog.text
    rows = list(await store.db.execute_fetchall("PRAGMA wal_autocheckpoint"))
    assert rows[0][0] == (128 << 10) // 16384
    assert peak < 4 << 20, peak  # one batch past SQLite's own interval
    assert store.checkpoints.checkpoints == 0 and await store.count() == 12_000
    await store.close()


async def test_a_write_waiting_on_a_checkpoint_while_the_store_closes_starts_no_other(tmp_path):
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=128 << 10, hard_bytes=256 << 10)
    await store.open()
    held = asyncio.get_running_loop().create_future()
    store.checkpoints._running = held  # a checkpoint under way that has not ended
    await store.db.execute(_INSERT_SOME, (1000,))  # past both bounds, no checkpoint started
    waiting = asyncio.create_task(store.checkpoints.wrote())  # stalls: waits for `held`
    await asyncio.sleep(0)
    assert not waiting.done() and store.checkpoints.stalls == 1
    closing = asyncio.create_task(store.checkpoints.close())
    await asyncio.sleep(0)
    held.set_result((0, 0, 0))
    store.checkpoints._running = None
    await asyncio.gather(waiting, closing)
    assert store.checkpoints._thread is None and not checkpoint_threads()
    store.checkpoints.open()  # as the store's open does
    await store.write(batch(0, 1000))
    await store.checkpoints.drain()
    assert store.checkpoints.checkpoints > 0
    await store.close()


# Rows written around the store, so that no checkpoint is started by the write itself.
_INSERT_SOME = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO events(id, time, host, type, severity, source, fingerprint, body)
SELECT hex(randomblob(16)), i, 'h', 't', 'minor', 's', 'f', zeroblob(400) FROM n
"""


async def test_the_store_syncs_each_write_with_storage_fsync_and_not_without(tmp_path):
    for fsync, level in ((True, 2), (False, 1)):  # FULL, NORMAL
        store = SqliteEventStore(tmp_path / f"events-{fsync}.db", fsync=fsync)
        await store.open()
        rows = list(await store.db.execute_fetchall("PRAGMA synchronous"))
        assert rows[0][0] == level
        await store.close()


async def test_retention_and_dead_letters_tell_the_checkpointer(tmp_path):
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, checkpoint_bytes=64 << 10, hard_bytes=8 << 20)
    await store.open()
    store.checkpoints._running = asyncio.get_running_loop().create_future()  # hold writes' checkpoints
    await store.write(batch(0, 3000))
    store.checkpoints._running = None
    before = store.checkpoints.checkpoints
    assert await store.delete_older_than(1000.0 + 2000) == 2000
    await store.checkpoints.drain()
    assert store.checkpoints.checkpoints > before
    await store.close()
