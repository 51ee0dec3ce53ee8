"""Which store errors are the store's own trouble and which are the data's.

The runner bisects a failing batch and dead-letters the one event the store refuses, but only for an
error the data can cause: a store that is down, locked or full refuses every event alike, and then
the batch is retried (never dead-lettered) until the store recovers.
"""

from __future__ import annotations

import sqlite3
import sys

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, disk I/O, ...
    TimeoutError,
    sqlite3.OperationalError,  # locked, busy, disk full, I/O error: none of them about the data
)
# PostgreSQL's are asyncpg's classes, looked up only once asyncpg is loaded: a process without the
# PostgreSQL store (replay, `rules test`, SQLite) never raises them and need not import it (~20 ms).
_PG_TRANSIENT = (
    "PostgresConnectionError",
    "InterfaceError",  # connection closed, pool closing
    "InternalClientError",  # the client's protocol state after a session ended under it
    "InsufficientResourcesError",  # class 53: disk full, out of memory, too many connections
    "OperatorInterventionError",  # class 57: admin shutdown, query cancelled
)


def transient(e: BaseException) -> bool:
    """True when retrying later may succeed whatever the events are (never dead-letter then)."""
    if isinstance(e, _TRANSIENT):
        return True
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(e, tuple(getattr(asyncpg, name) for name in _PG_TRANSIENT))


FENCED = "CRF01"  # raised by the cluster's fencing trigger (cluster/fence.py)


def fenced(e: BaseException) -> bool:
    """True when the database refused a write because another worker took this one's partitions:
    retrying can never succeed, and the batch belongs to the partitions' new owner."""
    return getattr(e, "sqlstate", None) == FENCED
