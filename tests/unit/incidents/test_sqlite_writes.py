"""The SQLite incident store's write path: the schema's upgrade that left the active-key
uniqueness to the only writer, and the tests' check of it."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from correlator.incidents.model import Incident, Status
from correlator.incidents.sqlite_store import MIGRATIONS, SqliteIncidentStore
from correlator.incidents.store import WRITES, Rows, _columns
from correlator.store.sqlite import open_sqlite
from tests.unit.incidents.conftest import T0, active_key_duplicates


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
