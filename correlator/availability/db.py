"""Persistence of availability state: `availability.db` (SQLite, WAL) beside the event store.

Holds the active down conditions, when each service began to be tracked, and every outage; the
stage writes a batch's changes in one transaction before the batch is acknowledged.
"""

from __future__ import annotations

from pathlib import Path

from correlator.availability.state import Op
from correlator.store.sqlite import SqliteFile, transaction

MIGRATIONS: list[str] = [
    # 1: conditions, services, outages
    """
    CREATE TABLE conditions (
        ci TEXT NOT NULL, resource TEXT NOT NULL, type TEXT NOT NULL, since REAL NOT NULL,
        PRIMARY KEY (ci, resource, type)
    );
    CREATE TABLE services (name TEXT PRIMARY KEY, since REAL NOT NULL);
    CREATE TABLE outages (
        id INTEGER PRIMARY KEY, service TEXT NOT NULL, start REAL NOT NULL, "end" REAL
    );
    CREATE INDEX outages_service ON outages(service, start);
    """,
]

_SQL = {
    "cond_add": "INSERT OR REPLACE INTO conditions(ci, resource, type, since) VALUES (?, ?, ?, ?)",
    "cond_del": "DELETE FROM conditions WHERE ci = ? AND resource = ? AND type = ?",
    "cond_clear": "DELETE FROM conditions WHERE ci = ? AND resource = ?",
    "service": "INSERT OR IGNORE INTO services(name, since) VALUES (?, ?)",
    "outage_start": "INSERT INTO outages(service, start) VALUES (?, ?)",
    "outage_end": 'UPDATE outages SET "end" = ?2 WHERE service = ?1 AND "end" IS NULL',
}


class AvailabilityDB(SqliteFile):
    def __init__(self, path: Path) -> None:
        # synchronous=FULL: an outage is rare and must survive power loss.
        super().__init__(path, MIGRATIONS, ("synchronous=FULL",), "availability database")

    async def load(
        self,
    ) -> tuple[
        list[tuple[str, str, str, float]], list[tuple[str, float]], list[tuple[str, float, float | None]]
    ]:
        db = self.db
        conds = [
            tuple(r) for r in await db.execute_fetchall("SELECT ci, resource, type, since FROM conditions")
        ]
        services = [tuple(r) for r in await db.execute_fetchall("SELECT name, since FROM services")]
        outages = [
            tuple(r)
            for r in await db.execute_fetchall(
                'SELECT service, start, "end" FROM outages ORDER BY service, start, id'
            )
        ]
        return conds, services, outages

    async def apply(self, ops: list[Op]) -> None:
        if not ops:
            return
        db = self.db
        async with transaction(db):
            for kind, args in ops:
                await db.execute(_SQL[kind], args)
