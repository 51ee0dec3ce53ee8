"""PostgreSQL sessions of the stores: a process paused inside a transaction does not hold its locks
for good; the server ends its session after it sat idle in the transaction, and the error its next
statement meets is one the stores retry."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from correlator.store import postgres
from correlator.store.faults import transient
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]


@pytest.fixture
async def short_idle(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    await reset_pg(pg_dsn)
    monkeypatch.setattr(postgres, "SESSION_IDLE_TIMEOUT", "1s")
    return pg_dsn


async def test_a_session_paused_inside_a_transaction_frees_its_locks(short_idle: str) -> None:
    pool = await postgres.connect_pool(short_idle, "storage.dsn")
    other = await asyncpg.connect(short_idle)
    try:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT pg_advisory_xact_lock(4242)")  # then the process stops
            # Another session gets the lock once the server ended the paused one (after 1 s idle);
            # without the setting it would wait the whole lock_timeout and fail.
            await other.execute("SET lock_timeout = '20s'")
            await asyncio.wait_for(other.execute("SELECT pg_advisory_xact_lock(4242)"), 30)
            with pytest.raises(Exception) as woke:  # the paused process wakes up
                await conn.execute("SELECT 1")
            assert transient(woke.value), repr(woke.value)
            with contextlib.suppress(Exception):
                await tx.rollback()
    finally:
        await other.close()
        pool.terminate()


async def test_a_dsn_that_sets_the_idle_timeout_keeps_its_own(short_idle: str) -> None:
    sep = "&" if "?" in short_idle else "?"
    pool = await postgres.connect_pool(
        f"{short_idle}{sep}idle_in_transaction_session_timeout=7000", "storage.dsn"
    )
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "7s"
        plain = await postgres.connect_pool(short_idle, "storage.dsn")
        try:
            async with plain.acquire() as conn:
                assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1s"
        finally:
            await plain.close()
    finally:
        await pool.close()
