"""PostgreSQL migrations when another process holds their lock: a process paused inside its own
migrations (SIGSTOP) loses its session to the server's idle timeout, and a start waiting for the
lock says so and goes on once it is free."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from correlator import metrics
from correlator.store import postgres
from correlator.store.postgres import PgEventStore, migrate_pg
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]


class Paused:
    """A connection whose process stops before sending `at`: its transaction stays open, idle."""

    def __init__(self, conn: Any, at: str) -> None:
        self._conn = conn
        self._at = at
        self.reached = asyncio.Event()

    def transaction(self) -> Any:
        return self._conn.transaction()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        if sql == self._at:
            self.reached.set()
            await asyncio.Event().wait()
        return await self._conn.execute(sql, *args)


@pytest.fixture
async def short_waits(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    await reset_pg(pg_dsn)
    monkeypatch.setattr(postgres, "MIGRATION_IDLE_TIMEOUT", "1s")
    monkeypatch.setattr(postgres, "MIGRATION_LOCK_TIMEOUT", "200ms")
    return pg_dsn


async def test_a_process_paused_inside_its_migrations_does_not_block_another_start(short_waits: str) -> None:
    conn = await asyncpg.connect(short_waits)
    paused = Paused(conn, "SELECT 'paused here'")
    holder = asyncio.create_task(migrate_pg(paused, "other", ["SELECT 'paused here'"]))
    await asyncio.wait_for(paused.reached.wait(), 10)  # holding the migration lock, idle
    store = PgEventStore(short_waits)
    try:
        await asyncio.wait_for(store.open(), 30)  # waited for good before the idle timeout
        assert await store.count() == 0
    finally:
        await store.close()
        holder.cancel()
        conn.terminate()
        await asyncio.gather(holder, return_exceptions=True)


async def test_a_start_waits_for_migrations_under_way_saying_so(short_waits: str) -> None:
    other = await asyncpg.connect(short_waits)
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT pg_advisory_xact_lock($1)", postgres._LOCK_ID)
    waits = metrics.PG_MIGRATION_LOCK_WAITS._value.get()
    store = PgEventStore(short_waits)
    opening = asyncio.create_task(store.open())
    try:
        async with asyncio.timeout(30):
            while metrics.PG_MIGRATION_LOCK_WAITS._value.get() == waits:
                await asyncio.sleep(0.05)
        assert not opening.done()
        await tx.commit()  # the other process' migrations are done
        await asyncio.wait_for(opening, 30)
        assert await store.count() == 0
    finally:
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        await store.close()
        await other.close()


async def test_a_start_whose_schema_is_current_takes_no_lock(short_waits: str) -> None:
    first = PgEventStore(short_waits)
    await first.open()
    await first.close()
    other = await asyncpg.connect(short_waits)
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT pg_advisory_xact_lock($1)", postgres._LOCK_ID)  # a long migration
    waits = metrics.PG_MIGRATION_LOCK_WAITS._value.get()
    store = PgEventStore(short_waits)
    try:
        await asyncio.wait_for(store.open(), 30)
        assert metrics.PG_MIGRATION_LOCK_WAITS._value.get() == waits
    finally:
        await store.close()
        await tx.rollback()
        await other.close()


async def test_the_lock_limit_does_not_cut_a_migrations_own_statements(short_waits: str) -> None:
    """A migration's DDL waiting for a long report on its table waits past the lock limit."""
    other = await asyncpg.connect(short_waits)
    conn = await asyncpg.connect(short_waits)
    try:
        await other.execute("DROP TABLE IF EXISTS migrated; CREATE TABLE migrated (a int)")
        report = other.transaction()
        await report.start()
        await other.execute("LOCK TABLE migrated IN ACCESS SHARE MODE")  # a reader, mid-report
        migrating = asyncio.create_task(migrate_pg(conn, "other", ["ALTER TABLE migrated ADD COLUMN b int"]))
        await asyncio.sleep(0.6)  # three times the lock limit (200 ms)
        assert not migrating.done()
        await report.commit()
        assert await asyncio.wait_for(migrating, 30) == 1
    finally:
        await other.execute("DROP TABLE IF EXISTS migrated")
        await other.close()
        await conn.close()
