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
