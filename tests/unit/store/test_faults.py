"""Transient store errors (retried, never dead-lettered) against the data's own (dead-lettered)."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from correlator.store.faults import fenced, transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(),
        TimeoutError(),
        sqlite3.OperationalError("database is locked"),
        asyncpg.PostgresConnectionError("gone"),
        asyncpg.ConnectionDoesNotExistError("closed"),  # a PostgresConnectionError
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.InternalClientError("protocol state"),
        asyncpg.InsufficientResourcesError("disk full"),
        asyncpg.OperatorInterventionError("admin shutdown"),
    ],
)
def test_the_stores_own_trouble_is_transient(error):
    assert transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad value"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.DataError("invalid input"),
    ],
)
def test_what_the_data_causes_is_not(error):
    assert not transient(error)


def test_only_the_fence_sqlstate_is_fenced():
    fence = asyncpg.RaiseError("fenced")
    fence.sqlstate = "CRF01"
    assert fenced(fence)
    assert not fenced(asyncpg.UniqueViolationError("duplicate key"))
