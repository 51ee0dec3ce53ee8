"""A notice on its way to one target, and the file in the data directory where the waiting ones are kept.

Apart from the SQLite store (store.py), which only a process that delivers opens: replay and
`rules test` build the notify stage but never send, and never load the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FILE = "outbox.db"


@dataclass(slots=True)
class Notice:
    """One body on its way to one target. Times are wall-clock (they must mean something after a
    restart); `headers` are only those the body was rendered for (Content-Type): secrets such as
    tokens stay in the configuration, not on disk."""

    id: str
    target: str
    body: bytes
    created: float
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 0  # made so far
    next_at: float = 0.0  # no attempt before this time
