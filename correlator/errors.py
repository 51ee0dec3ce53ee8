"""The daemon's exception hierarchy; every error says what was expected and where.

Shared by every layer, so a caller can catch `CorrelatorError` at a boundary and report it cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from correlator.yamlfile import Position


class CorrelatorError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(CorrelatorError):
    """The configuration file or a command-line flag is invalid; stops start-up."""


class FileError(ConfigError):
    """One problem in a file operators edit and the daemon reloads: `str(e)` is
    `file:line:column: message` where the place is known."""

    def __init__(self, file: str, message: str, position: Position | None = None) -> None:
        self.file = file
        self.message = message
        self.position = position
        super().__init__(f"{position}: {message}" if position else message)

    def as_dict(self) -> dict[str, object]:
        """The shape of a rule error in the reload answers; line and column are null when unknown."""
        p = self.position
        return {
            "file": self.file,
            "line": p.line if p else None,
            "column": p.column if p else None,
            "message": self.message,
            "text": str(self),
        }


class FieldError(CorrelatorError):
    """One field of an incoming event is invalid; `field` names it ("" for the whole item).

    `reason` is the bounded label of `correlator_events_rejected_total` (correlator/door.py).
    """

    def __init__(self, field: str, message: str, reason: str = "invalid") -> None:
        # Both echo untrusted input (a value, a key) into answers and logs: bounded here, once.
        if len(field) > _FIELD_MAX:
            field = field[:_FIELD_MAX] + "..."
        if len(message) > _MESSAGE_MAX:
            message = message[:_MESSAGE_MAX] + "..."
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.reason = reason


_FIELD_MAX = 128
_MESSAGE_MAX = 500


class NotFound(CorrelatorError):
    """No record with that id (the API answers 404)."""


class IllegalTransition(CorrelatorError):
    """The record's state does not allow the asked action (the API answers 409)."""


class Conflict(CorrelatorError):
    """Another process saved the record after it was read, and the asked edit could not be applied
    to the stored version (the API answers 409)."""


class QueueFull(CorrelatorError):
    """The ingestion queue has no room: the caller must push back (HTTP 503, no MQTT ack, ...).

    `reason` labels rejection and drop metrics and `answer` is what a client is told; handlers use
    both rather than their own words, so a StorageUnavailable is never reported as a full queue."""

    reason = "queue_full"
    answer = "ingestion queue full, retry later"

    def __init__(self, depth: int, capacity: int, retry_after: float) -> None:
        super().__init__(f"ingestion queue full ({depth}/{capacity} events)")
        self.retry_after = retry_after


class StorageUnavailable(QueueFull):
    """The journal cannot write (disk full, I/O error): pushed back like a full queue, 503 +
    Retry-After, so senders retry instead of getting a 500 for something they did not cause."""

    reason = "storage_unavailable"
    answer = "storage unavailable: the ingest journal cannot write, retry later"

    def __init__(self, reason: str, retry_after: float) -> None:
        CorrelatorError.__init__(self, f"ingest journal cannot write ({reason}), retry later")
        self.retry_after = retry_after


class ShuttingDown(CorrelatorError):
    """The daemon is stopping and accepts no more events."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib  # only for a misspelt key, which stops start-up: most runs never need it

    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


# SQLSTATE classes of a lost or refused database connection: 08 connection exception, 57P operator
# intervention (pg_terminate_backend, shutdown), 53300 too many connections, and CRF01: the cluster's
# fence refused a worker that lost its partitions (docs/cluster.md) until it rejoins.
_LOST_SQLSTATES = ("08", "57P", "53300", "CRF01")
_LOST_ASYNCPG = frozenset(
    {"ConnectionDoesNotExistError", "ConnectionFailureError", "CannotConnectNowError", "InternalClientError"}
)


def store_connection_lost(e: BaseException) -> bool:
    """The database went away under a request (restart, failover, a killed backend): a 503 the client
    retries, not a 500 bug. Told by the driver's class name and SQLSTATE, so that asyncpg is not
    imported where PostgreSQL is not used."""
    if isinstance(e, ConnectionRefusedError):  # the pool reconnecting to a server that is down
        return True
    if not type(e).__module__.startswith("asyncpg"):
        return False
    state = getattr(e, "sqlstate", None) or ""
    return type(e).__name__ in _LOST_ASYNCPG or state.startswith(_LOST_SQLSTATES)
