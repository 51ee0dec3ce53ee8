"""Picks the incident store's back end from the configuration: PostgreSQL for a DSN, else SQLite.

Kept apart from the protocol in correlator/incidents/store.py, which both back ends import.
"""

from __future__ import annotations

from pathlib import Path

from correlator.incidents.store import IncidentStore


def create_store(dsn: str | None, data_dir: Path) -> IncidentStore:
    if dsn:
        from correlator.incidents.pg_store import PgIncidentStore

        return PgIncidentStore(dsn)
    from correlator.incidents.sqlite_store import SqliteIncidentStore

    return SqliteIncidentStore(data_dir / "incidents.db")
