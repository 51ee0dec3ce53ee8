"""The SQLite incident store's write path: a batch in multi-row statements, in order; the schema's
upgrade that left the active-key uniqueness to the only writer, and the tests' check of it."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from correlator.clock import Clock
from correlator.incidents.model import Incident, Status
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import MIGRATIONS, SqliteIncidentStore, _chunks
from correlator.incidents.store import WRITES, IncidentQuery, Rows, _columns
from correlator.store.sqlite import open_sqlite
from tests.support.threads import no_thread_left
from tests.unit.incidents.conftest import T0, active_key_duplicates, request


def test_a_batch_is_cut_into_the_fixed_chunk_sizes_in_order():
    batch = [(i, T0, "system", "comment", "{}") for i in range(700)]  # timeline rows
    chunks = list(_chunks(WRITES[2], batch))
    sizes = [len(values) // 5 for _, values in chunks]
    assert sizes == [256, 256, 128, 32, 16, 8, 4]
    assert [v for _, values in chunks for v in values[::5]] == list(range(700))
    assert all(sql.count("?") == len(values) for sql, values in chunks)
    assert list(_chunks(WRITES[2], [])) == []


async def test_a_large_commit_stores_every_incident_and_its_timeline_in_order(tmp_path: Path):
    svc = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), parse_settings({}), Clock(T0))
    await svc.open()
    try:
        await svc.apply([request("open", T0, key=f"k{i}", host=f"h{i}") for i in range(700)])
        await svc.settled()
        page = await svc.store.query(IncidentQuery(limit=1000))
        assert [i.id for i in page.incidents] == list(range(700, 0, -1))
        assert {i.key for i in page.incidents} == {f"k{i}" for i in range(700)}
        assert [e.action for e in await svc.store.timeline(350)] == ["open", "event"]
    finally:
        await svc.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "incidents.db")) as db:
        log = db.execute("SELECT incident_id, action FROM incident_log ORDER BY seq").fetchall()
        assert db.execute("PRAGMA page_size").fetchone() == (16384,)  # a new file's
    assert log == [(n, a) for n in range(1, 701) for a in ("open", "event")]


async def test_the_upgrade_drops_the_active_key_index_and_keeps_the_incidents(tmp_path: Path):
    path = tmp_path / "incidents.db"
    db = await open_sqlite(path, MIGRATIONS[:1])  # a database of the first schema version
    inc = Incident("link down", T0, id=7, key="k", host="h")
    await db.execute(WRITES[1], _columns(inc))
    await db.close()
    store = SqliteIncidentStore(path)
    await store.open()
    try:
        assert [i.id for i in await store.load_unclosed()] == [7]
        again = Incident("link down", T0, id=8, key="k", host="h")
        await store.write(Rows([], [_columns(again)], []))  # the store itself no longer refuses it
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert check.execute("PRAGMA page_size").fetchone() == (4096,)  # an existing file keeps its pages
        indexes = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "incidents_active_key" not in indexes
    assert active_key_duplicates(path) == ["k"]  # and the tests' check finds it


def test_the_check_counts_only_active_incidents_of_a_key(tmp_path: Path):
    path = tmp_path / "incidents.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript("".join(MIGRATIONS))
        for n, (key, status) in enumerate(
            [
                ("a", Status.RESOLVED),
                ("a", Status.NEW),
                ("b", Status.CLOSED),
                ("b", Status.ON_HOLD),
                (None, Status.NEW),
                (None, Status.NEW),
            ],
            start=1,
        ):
            db.execute(WRITES[1], _columns(Incident("t", T0, id=n, key=key, status=status)))
        db.commit()
    assert active_key_duplicates(path) == []


async def test_a_service_that_cannot_load_its_incidents_leaves_the_store_closed(tmp_path: Path):
    store = SqliteIncidentStore(tmp_path / "incidents.db")
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "incidents.db")) as db, db:
        db.execute(
            "INSERT INTO incidents(status, priority, host, service, major, opened_at, updated_at, body)"
            " VALUES ('new', 'P3', 'h', '', 0, 0, 0, '{')"  # a row no release wrote: unreadable
        )
    svc = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), parse_settings({}), Clock(T0))
    async with no_thread_left():
        with pytest.raises(ValueError):
            await svc.open()
