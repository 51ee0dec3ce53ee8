"""The dead-letter path: what the journal or the event store cannot take is set aside, not retried forever.

An event the store refuses after bounded tries (the batch is bisected to find it), a journal item
that cannot be decoded, or an event that cannot be serialised is written to the store's
`dead_letters` table with the reason, counted, and then acknowledged, so it never holds up the
events behind it. docs/architecture.md "Dead-letter path".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from prometheus_client.metrics import Counter

from correlator.event import Event, iso

# Bounded: the metric label and the API's `reason` take only these values.
STORE_REJECTED = "store_rejected"  # the event store refused the event alone, after retries
UNDECODABLE = "undecodable"  # a journal item that is not a list of wire events
UNSERIALISABLE = "unserialisable"  # an event that cannot be encoded for the journal
JOURNAL_REJECTED = "journal_rejected"  # the journal refused it after bounded tries (collector side)
REASONS = (STORE_REJECTED, UNDECODABLE, UNSERIALISABLE, JOURNAL_REJECTED)

MAX_RAW = 256 * 1024  # characters of the raw event kept; more is cut and marked
MAX_TEXT = 1024  # error, source and id columns

DEAD_LETTERED = Counter(
    "correlator_events_dead_lettered_total",
    "Events set aside in the dead-letter table instead of being stored, by reason",
    ["reason"],
)
for _reason in REASONS:
    DEAD_LETTERED.labels(_reason)


@dataclass(slots=True)
class DeadLetter:
    reason: str
    source: str
    event_id: str
    error: str
    raw: str  # the event as JSON text (escaped, so any byte is safe in any store), cut at MAX_RAW
    at: float  # when it was set aside (wall clock)
    id: int = 0  # assigned by the store

    @property
    def key(self) -> str:
        """What makes two dead letters the same (a batch delivered again after a crash is set
        aside again): the event id, or the raw text's digest when there is no id."""
        seed = f"{self.reason}\x1f{self.event_id or self.raw}"
        return hashlib.blake2b(seed.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "reason": self.reason,
            "source": self.source,
            "event_id": self.event_id,
            "error": self.error,
            "raw": self.raw,
        }


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    items: list[DeadLetter]
    next_cursor: int | None


class DeadLetterBusy(Exception):
    """A retry holds this dead letter (the API answers 409 to another retry, or to a delete)."""


# A claim older than this is taken as abandoned: its daemon died, or could not reach the database
# to finish or release it. Far longer than a retry's emit, which is bounded (a journal commit, or a
# JetStream publish with its timeout): a live retry keeps its claim.
CLAIM_SECONDS = 60.0


@dataclass(slots=True)
class Claim:
    """One dead letter held for a retry; `letter` is None when there is no such dead letter."""

    letter: DeadLetter | None
    _delete: Callable[[int], Awaitable[object]]
    deleted: bool = False

    async def delete(self) -> None:
        """Remove it (the retry's event is durable): within the claim, so no other retry saw it."""
        if self.letter is not None:
            await self._delete(self.letter.id)
        self.deleted = True


class DeadLetterStore(Protocol):
    """The part of the event store that keeps dead letters (same database, table `dead_letters`)."""

    async def add_dead_letters(self, items: list[DeadLetter]) -> int:
        """Insert; one already held (same `key`) is kept once. Returns how many were new."""
        ...

    async def dead_letters(self, limit: int, cursor: int | None, reason: str | None) -> DeadLetterPage:
        """Newest first; `cursor` continues below that id."""
        ...

    async def get_dead_letter(self, id_: int) -> DeadLetter | None: ...

    async def delete_dead_letter(self, id_: int) -> bool:
        """False when there is no such dead letter; raises DeadLetterBusy while a retry holds it."""
        ...

    def claim_dead_letter(self, id_: int) -> AbstractAsyncContextManager[Claim]:
        """Hold one dead letter while its event is retried; raises DeadLetterBusy on entry while
        another claim holds it, so two concurrent retries cannot both put the event back. Left
        without `Claim.delete` (the retry failed, or its delete did), the claim is released. The
        claim holds no connection or lock of the store while the event is emitted."""
        ...


def of_event(ev: Event, reason: str, error: BaseException | str, at: float | None = None) -> DeadLetter:
    return DeadLetter(
        reason,
        text(getattr(ev, "source", "")),
        text(getattr(ev, "id", "")),
        text(str(error)),
        raw_event(ev),
        time.time() if at is None else at,
    )


def of_payload(
    payload: bytes,
    reason: str,
    error: BaseException | str,
    at: float | None = None,
    doc: object = None,
) -> DeadLetter:
    """A journal item that cannot be decoded: its bytes are kept as text (invalid UTF-8 replaced).
    `doc`, the item's JSON when it is one, gives the event id and source when they are text."""
    raw = payload.decode("utf-8", "backslashreplace")
    ident = doc.get("id") if isinstance(doc, dict) else None
    source = doc.get("source") if isinstance(doc, dict) else None
    return DeadLetter(
        reason,
        text(source) if isinstance(source, str) else "",
        text(ident) if isinstance(ident, str) else "",
        text(str(error)),
        _cut(text(raw, MAX_RAW)),
        time.time() if at is None else at,
    )


async def set_aside(store: DeadLetterStore, items: list[DeadLetter]) -> None:
    """Write durably and count; raises if the store cannot take them (the caller keeps retrying)."""
    if not items:
        return
    await store.add_dead_letters(items)
    for item in items:
        DEAD_LETTERED.labels(item.reason).inc()


def raw_event(ev: Event) -> str:
    """The event as JSON text. orjson first; what it refuses (lone surrogates, nesting past its
    limit) falls back to the standard library with escapes, and last to repr: always some text."""
    try:
        d = ev.to_dict()
    except Exception:
        return _cut(text(repr(ev), MAX_RAW + 1))
    for encode in (_orjson, _stdlib):
        try:
            return _cut(encode(d))
        except Exception:  # noqa: S112 - the next encoder, then repr, always gives some text
            continue
    return _cut(text(repr(d)[: MAX_RAW + 1], MAX_RAW + 1))


def _orjson(d: dict[str, Any]) -> str:
    return orjson.dumps(d, default=str).decode()


def _stdlib(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=True, default=str)


def text(value: object, limit: int = MAX_TEXT) -> str:
    """A column-safe string: no NUL (PostgreSQL text refuses it), no lone surrogate (UTF-8 refuses it)."""
    s = value if isinstance(value, str) else str(value)
    s = s[:limit].replace("\x00", "\\u0000")
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _cut(raw: str) -> str:
    return raw if len(raw) <= MAX_RAW else raw[:MAX_RAW] + "...(cut)"
