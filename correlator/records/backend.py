"""Picks the record store's back end from the configuration: PostgreSQL for a DSN, else SQLite.

Kept apart from the protocol in correlator/records/store.py, which both back ends import.
"""

from __future__ import annotations

from pathlib import Path

from correlator.records.store import RecordStore


def create_record_store(dsn: str | None, data_dir: Path) -> RecordStore:
    if dsn:
        from correlator.records.postgres import PgRecordStore

        return PgRecordStore(dsn)
    from correlator.records.sqlite import SqliteRecordStore

    return SqliteRecordStore(data_dir / "records.db")
