"""A throw-away PostgreSQL database for the store tests (127.0.0.1:5432, trust auth), or a clear skip."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import Iterator

import pytest

BASE_DSN = os.environ.get("CORRELATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{BASE_DSN}/postgres", timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(sql: str) -> None:
    """Run admin SQL on a loop of its own (the fixture may be asked for from inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(sql)).result()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a database created for this test session and dropped after it."""
    name = f"correlator_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _run(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as e:
        pytest.skip(f"PostgreSQL not answering at {BASE_DSN} ({e}); set CORRELATOR_TEST_PG to run these")
    except Exception as e:
        pytest.skip(f"PostgreSQL at {BASE_DSN} refused to create a test database: {e}")
    yield f"{BASE_DSN}/{name}"
    _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_pg(dsn: str) -> None:
    """Drop every table so each test starts from an empty, unmigrated database."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
