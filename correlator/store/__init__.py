"""The event store: where processed events are kept and queried.

Writes are idempotent by event id, so an item delivered twice by the queue (crash between store and
ack) is stored once; the ids of repeats folded into a stored event are kept too, so such an item
finds every event it held known, stored or folded. SQLite is the embedded default; other back ends
implement `EventStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from correlator.deadletter import DeadLetterStore
from correlator.event import Event


@dataclass(frozen=True, slots=True)
class EventQuery:
    host: str | None = None
    type: str | None = None
    severities: tuple[str, ...] = ()
    source: str | None = None
    fingerprint: str | None = None
    since: float | None = None  # event time, inclusive
    until: float | None = None  # event time, exclusive
    limit: int = 100
    cursor: int | None = None  # continue below this store position (newest first)


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[Event]
    next_cursor: int | None


class EventStore(DeadLetterStore, Protocol):
    async def open(self) -> None: ...

    async def write(self, events: list[Event]) -> int:
        """Store events (ignoring ids already stored); returns how many were new."""
        ...

    async def fold(self, events: list[Event], folded: Sequence[Event] = ()) -> int:
        """Rewrite stored events whose count/last_seen grew (de-duplication), and keep the ids of
        the repeats `folded` into them (for `known`), in one transaction; idempotent. Returns how
        many stored events changed."""
        ...

    async def write_and_fold(
        self, events: list[Event], updates: list[Event], folded: Sequence[Event] = ()
    ) -> int:
        """`write(events)` then `fold(updates, folded)`, in as few trips to the database as the store
        can; returns how many events were new. On an error the caller may repeat the two apart."""
        ...

    async def query(self, q: EventQuery) -> EventPage: ...

    async def count(self) -> int: ...

    async def busiest_hosts(self, since: float, until: float, limit: int) -> list[tuple[str, int]]:
        """The `limit` hosts with the most events (repeats folded in included) of event time in
        [since, until), most first: the report's noisiest CIs."""
        ...

    async def known(self, ids: list[str]) -> set[str]:
        """Which of `ids` are stored or were folded into a stored event (to skip what a crash left
        stored but unacked)."""
        ...

    async def position(self) -> int:
        """The newest store position (0 when empty); positions only grow."""
        ...

    async def after(self, pos: int, limit: int, hosts: list[str] | None = None) -> list[tuple[int, Event]]:
        """Events stored after position `pos`, oldest first (level-2 state rebuild after a crash);
        with `hosts`, only the events of those hosts (a cluster partition's own)."""
        ...

    async def hosts_after(self, pos: int) -> list[str]:
        """The hosts of the events stored after position `pos`, each once, in no order."""
        ...

    async def delete_older_than(self, t: float) -> int:
        """Delete the events, and the folded repeats' ids, of event time before `t`; returns how
        many events went."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
