"""Change management's one entry point: change records, their state machine, calendar occurrences
(and their withdrawal when a reloaded calendar no longer backs them), the maintenance scope the
pipeline reads, and the linking of incidents to suspected changes.

Keeps the changes that still matter (not finished, or finished within the suspect window) in
memory, so the pipeline never waits on a read. Starting, finishing and failing a change emit an
event through the ingest path (durable; rules can react) once the new state is saved; a full queue
refuses the transition before anything is saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import Counter, Gauge

from correlator import errors
from correlator.changes import occurrences
from correlator.changes.calendar import Calendar
from correlator.changes.model import ACTIONS, COVERING, TRANSITIONS, Change, IllegalTransition, State
from correlator.changes.scope import Scope
from correlator.changes.settings import ChangeSettings
from correlator.changes.topology import DependencyMap
from correlator.clock import Clock
from correlator.errors import CorrelatorError, QueueFull, ShuttingDown
from correlator.event import Event, Severity, new_id
from correlator.records.edit import apply_edit, save_record
from correlator.records.store import LogEntry, RecordConflict, RecordStore

if TYPE_CHECKING:
    from correlator.incidents.model import Incident
    from correlator.incidents.service import IncidentService

log = logging.getLogger(__name__)

Emit = Callable[[list[Event], str], Awaitable[None]]
# The push-back the ingest queue would answer an event with now (full), else None (Ingest.full).
Full = Callable[[], QueueFull | ShuttingDown | None]

OUTCOMES = Counter("correlator_change_outcomes_total", "Changes finished, by outcome", ["outcome"])
ACTIVE = Gauge("correlator_changes", "Changes not finished, by state", ["state"])
INDUCED = Counter(
    "correlator_change_induced_incidents_total", "Incidents linked to a change as its suspected cause"
)
EMITTED = Counter(
    "correlator_change_events_total", "Change lifecycle events put on the ingest queue, by result", ["result"]
)
UNREADABLE = Counter(
    "correlator_change_records_unreadable_total",
    "Stored change records another process wrote that this one cannot read (skipped at a sync)",
)
EVENT_TYPES = {
    State.IN_PROGRESS: "change.started",
    State.COMPLETED: "change.completed",
    State.FAILED: "change.failed",
}
_KEEP_FINISHED = 2 * 86400.0  # finished changes stay in memory this long beyond the suspect window
# An edit of a change, applied again to the stored version after a conflict (records/edit.py).
Edit = Callable[[Change], Awaitable[LogEntry | None]]


class NotFound(errors.NotFound):
    pass


class ChangeService:
    def __init__(
        self,
        store: RecordStore,
        settings: ChangeSettings,
        clock: Clock,
        emit: Emit | None = None,
        incidents: IncidentService | None = None,
        full: Full | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.emit = emit
        self.full = full
        self.incidents = incidents
        self.scope = Scope()
        self._live: dict[int, Change] = {}
        self._calendar_keys: set[str] = set()
        self._lock = asyncio.Lock()
        # Whether this process writes the calendar's records (creates occurrences, starts, finishes
        # and withdraws them). Always in one process; in the cluster only the timer leader, or every
        # worker would write each occurrence (docs/cluster.md). The others read them through sync().
        self.writes_calendar: Callable[[], bool] = lambda: True
        self._was_writer = True
        self._withdraw_pending: str | None = None  # a withdrawal left to the writer: its reason

    async def open(self) -> None:
        """Load the changes that still matter from the (already open) record store; occurrences of
        windows edited or removed while the daemon was stopped are withdrawn as at a reload."""
        now = self.clock.now()
        for c in _readable(doc for _, doc in await self.store.records("changes", limit=100_000)):
            if self._keep(c, now):
                self._live[c.id] = c
        self._refresh()
        async with self._lock:
            await self._withdraw_or_defer(now, "calendar reload (start)")

    def share_calendar(self, writer: Callable[[], bool]) -> None:
        """Several processes share the store (the cluster): only while `writer()` says so does this
        one write the calendar's records; on becoming the writer it first reads every change again."""
        self.writes_calendar = writer
        self._was_writer = False

    async def sync(self, ids: Iterable[int] | None = None) -> int:
        """Take the stored version of the given changes (None: of every change), as saved by any
        process sharing the store (the cluster, docs/cluster.md); returns how many were read."""
        async with self._lock:
            if ids is None:
                docs = [doc for _, doc in await self.store.records("changes", limit=100_000)]
            else:
                docs = [doc for i in sorted(set(ids)) if (doc := await self.store.get("changes", i))]
            now = self.clock.now()
            for c in _readable(docs):
                if self._keep(c, now):
                    self._live[c.id] = c
                else:
                    self._live.pop(c.id, None)
            self._refresh()
            return len(docs)

    # --- people (API, CLI) ---------------------------------------------------------------------

    async def create(self, actor: str, fields: dict[str, Any]) -> Change:
        async with self._lock:
            now = self.clock.now()
            c = Change(created_at=now, updated_at=now, **fields)
            await self._save(c, [LogEntry(now, actor, "create", {"state": c.state.value})])
            return c

    async def act(self, change_id: int, action: str, actor: str, note: str = "") -> Change:
        """approve, start, complete, fail, cancel: the state machine decides (IllegalTransition: 409)."""
        async with self._lock:
            c = self._live.get(change_id)
            if c is None:
                doc = await self.store.get("changes", change_id)
                if doc is None:
                    raise NotFound(f"no change {change_id}")
                c = Change.from_doc(doc)
            try:
                return await self._transition(c, ACTIONS[action], actor, note)
            except IllegalTransition:
                # Refused on the copy in memory: another process may have moved the change on
                # since (approved it, linked the incident a fail needs); judged on the stored one.
                fresh = await self._reread(change_id)
                if fresh.version == c.version:
                    raise
                return await self._transition(fresh, ACTIONS[action], actor, note)

    async def get(self, change_id: int) -> tuple[Change, list[LogEntry]]:
        c = self._live.get(change_id)
        if c is None:
            doc = await self.store.get("changes", change_id)
            if doc is None:
                raise NotFound(f"no change {change_id}")
            c = Change.from_doc(doc)
        return c, await self.store.log("changes", change_id)

    async def query(self, states: tuple[str, ...], limit: int, cursor: int | None) -> list[Change]:
        return list(_readable(d for _, d in await self.store.records("changes", states, limit, cursor)))

    # --- time: calendar occurrences and their automatic start and finish ---------------------

    async def run_due(self, now: float) -> None:
        """Create calendar occurrences within the horizon; start and finish calendar changes on time."""
        writer = self.writes_calendar()
        became, self._was_writer = writer and not self._was_writer, writer
        if not writer:
            return
        if became:  # leadership moved here: what the previous writer saved may not have reached us
            await self.sync()
        async with self._lock:
            if self._withdraw_pending is not None:
                await self._withdraw_stale(now, self._withdraw_pending)
                self._withdraw_pending = None
            await self._create_occurrences(now)
            for c in list(self._live.values()):
                if c.calendar is None:
                    continue
                try:
                    if c.state is State.APPROVED and now >= c.start:
                        c = await self._transition(
                            c, State.IN_PROGRESS, "calendar", "window opened", at=c.start
                        )
                    if c.state is State.IN_PROGRESS and now >= c.end:
                        await self._transition(c, State.COMPLETED, "calendar", "window closed", at=c.end)
                except IllegalTransition as e:  # another process moved it on (or cancelled it) meanwhile
                    log.info("calendar change %s was moved on elsewhere: %s", c.human_id, e)
                except CorrelatorError as e:  # queue full or shutting down: try again at the next tick
                    log.warning("calendar change %s could not move on yet: %s", c.human_id, e)

    async def use_calendar(
        self, calendar: Calendar, dependencies: DependencyMap, reason: str
    ) -> list[Change]:
        """Serve a reloaded calendar: withdraw (cancel, logged with `reason`) the not-yet-started
        occurrences it no longer backs, then create its occurrences within the horizon. Occurrences
        in progress run to their end. Returns the withdrawn changes."""
        async with self._lock:
            self.settings = dataclasses.replace(self.settings, calendar=calendar, dependencies=dependencies)
            now = self.clock.now()
            withdrawn = await self._withdraw_or_defer(now, reason)
            if self.writes_calendar():
                await self._create_occurrences(now)
            self._refresh()  # the scope follows the new dependencies even when no record changed
            return withdrawn

    # --- incidents ------------------------------------------------------------------------------

    def suspect_for(self, inc: Incident) -> Change | None:
        """The latest change begun on the incident's CI, upstream of it, or on its service, whose
        window (plus the suspect window) holds the incident's opening."""
        if not inc.host and not inc.service:
            return None
        cis = {inc.host} | set(self.settings.dependencies.upstream_of(inc.host))
        best: Change | None = None
        for c in self._live.values():
            begun = c.started_at if c.started_at is not None else (c.start if c.state in COVERING else None)
            if begun is None or c.state is State.CANCELLED or inc.opened_at < begun:
                continue
            if c.finished_at is not None:
                ended = c.finished_at
            else:  # an unfinished change in progress is still going on; an approved one ended with its window
                ended = max(c.end, inc.opened_at) if c.state is State.IN_PROGRESS else c.end
            if inc.opened_at > ended + self.settings.suspect_window:
                continue
            if cis.isdisjoint(c.cis) and inc.service not in c.services:
                continue
            if best is None or begun > (best.started_at or best.start):
                best = c
        return best

    async def link_incidents(self, incidents: Iterable[Incident]) -> int:
        if not self._live or self.incidents is None:  # no change to suspect: most batches, a storm's
            return 0
        linked = 0
        for inc in incidents:
            if inc.change_id is not None or self.incidents is None:
                continue
            c = self.suspect_for(inc)
            if c is None:
                continue
            await self.incidents.act(inc.id, "update", f"change:{c.human_id}", {"change_id": c.human_id})
            async with self._lock:
                try:  # the copy in memory now: a sync may have replaced it meanwhile
                    await self._update(self._live.get(c.id, c), _link(inc.id, inc.human_id, self.clock.now()))
                except RecordConflict as e:  # the incident names the change; the change's list misses it
                    log.error("%s not linked to %s: %s", inc.human_id, c.human_id, e)
            INDUCED.inc()
            linked += 1
        return linked

    # --- internals ------------------------------------------------------------------------------

    async def _create_occurrences(self, now: float) -> None:
        for w in self.settings.calendar.windows:
            for start, end in w.occurrences(now, self.settings.calendar_horizon):
                if occurrences.key(w.name, start) in self._calendar_keys:
                    continue
                c = occurrences.occurrence(w, start, end, now)
                await self._save(
                    c, [LogEntry(now, "calendar", "create", {"window": w.name, "state": "approved"})]
                )

    async def _withdraw_or_defer(self, now: float, reason: str) -> list[Change]:
        if self.writes_calendar():
            return await self._withdraw_stale(now, reason)
        self._withdraw_pending = reason  # done by whichever process writes the calendar next
        return []

    async def _withdraw_stale(self, now: float, reason: str) -> list[Change]:
        withdrawn = []
        for s in occurrences.stale(list(self._live.values()), self.settings.calendar, now):
            note = f"{reason}: window {s.window} {s.why}"
            try:
                c = await self._transition(s.change, State.CANCELLED, "calendar", note, withdraw=True)
            except IllegalTransition as e:  # started or cancelled by another process meanwhile
                log.info("%s: %s not withdrawn: %s", reason, s.change.human_id, e)
                continue
            log.info("%s: withdrew %s (window %s %s)", reason, c.human_id, s.window, s.why)
            withdrawn.append(c)
        return withdrawn

    async def _transition(
        self, c: Change, to: State, actor: str, note: str, at: float | None = None, withdraw: bool = False
    ) -> Change:
        """Move the change to `to`, save it and emit its event; returns the copy saved (another one
        than `c` when another process saved the change meanwhile and the transition was applied to
        its version). QueueFull, before anything is saved, when the event could not be queued."""
        now = self.clock.now() if at is None else at
        emits = self.emit is not None and to in EVENT_TYPES

        async def edit(c: Change) -> LogEntry:
            if to not in TRANSITIONS[c.state]:
                allowed = ", ".join(s.value for s in TRANSITIONS[c.state]) or "nothing (final)"
                raise IllegalTransition(
                    f"{c.human_id} is {c.state.value}: cannot go to {to.value}; allowed: {allowed}"
                )
            if c.state is State.COMPLETED and to is State.FAILED and not c.incidents:
                raise IllegalTransition(
                    f"{c.human_id} is completed with no linked incident: cannot mark it failed"
                )
            # The event follows the save (a save can still be refused by a conflict, and the
            # transition with it), so a full queue is asked first: the 503 leaves the change as it was.
            if emits and self.full is not None and (refusal := self.full()) is not None:
                EMITTED.labels("refused").inc()
                raise refusal
            before = c.state
            c.state = to
            c.updated_at = now
            if withdraw:
                c.withdrawn = True
            if to is State.IN_PROGRESS:
                c.started_at = now
            elif to in (State.COMPLETED, State.FAILED, State.CANCELLED):
                c.finished_at = now
            detail: dict[str, Any] = {"from": before.value, "to": to.value}
            if note:
                detail["note"] = note
            return LogEntry(now, actor, "state", detail)

        c = await self._update(c, edit)
        if to in (State.COMPLETED, State.FAILED, State.CANCELLED):
            OUTCOMES.labels(to.value).inc()
        if emits:
            await self._emit(c, to, now)
        return c

    async def _update(self, c: Change, edit: Edit) -> Change:
        """Apply `edit` to the change and save it, again on the stored version when another process
        saved the change since this copy was read (correlator/records/edit.py). Returns the copy saved."""
        return await apply_edit("changes", c, edit, lambda c, entry: self._save(c, [entry]), self._reread)

    async def _reread(self, change_id: int) -> Change:
        """The stored version of the change, which replaces the copy in memory."""
        doc = await self.store.get("changes", change_id)
        if doc is None:
            raise NotFound(f"no change {change_id}")
        c = Change.from_doc(doc)
        if self._keep(c, self.clock.now()):
            self._live[c.id] = c
        else:
            self._live.pop(c.id, None)
        self._refresh()
        return c

    async def _emit(self, c: Change, to: State, now: float) -> None:
        """Queue the event of the transition just saved. A refusal now (the queue filled since it
        was asked, its journal cannot write, the daemon is stopping) cannot undo the save: logged
        and counted as lost."""
        kind = EVENT_TYPES.get(to)
        if kind is None or self.emit is None:
            return
        ev = Event(
            id=new_id(),
            time=now,
            received=self.clock.now(),
            source="changes",
            host=c.cis[0] if c.cis else (c.services[0] if c.services else "change"),
            type=kind,
            severity=Severity.WARNING if to is State.FAILED else Severity.INFO,
            resource=c.human_id,
            message=f"{c.human_id} {to.value}: {c.title}",
            attributes={
                "change_id": c.human_id,
                "cis": list(c.cis),
                "services": list(c.services),
                "risk": c.risk,
                "implementer": c.implementer,
                "incidents": len(c.incidents),
            },
        )
        try:
            await self.emit([ev], "changes")
        except CorrelatorError as e:
            EMITTED.labels("lost").inc()
            log.error("%s is %s (saved) but its %s event was not queued: %s", c.human_id, to.value, kind, e)
            return
        except asyncio.CancelledError:  # the caller stopped (the daemon stopping) before the queue took it
            EMITTED.labels("lost").inc()
            log.error(
                "%s is %s (saved) but its %s event was cancelled before it was queued",
                c.human_id,
                to.value,
                kind,
            )
            raise
        EMITTED.labels("queued").inc()

    async def _save(self, c: Change, entries: list[LogEntry]) -> None:
        new = c.id == 0
        await save_record(self.store, "changes", c, c.updated_at, entries)
        if new and c.calendar is not None:
            self._calendar_keys.add(c.calendar)
        self._live[c.id] = c
        self._refresh()

    def _keep(self, c: Change, now: float) -> bool:
        if c.finished_at is None:
            return True
        return c.finished_at >= now - self.settings.suspect_window - _KEEP_FINISHED or c.end > now

    def _refresh(self) -> None:
        now = self.clock.now()
        for cid in [cid for cid, c in self._live.items() if not self._keep(c, now)]:
            del self._live[cid]
        self._calendar_keys = {
            c.calendar for c in self._live.values() if c.calendar is not None and not c.withdrawn
        }
        self.scope = Scope(self._live.values(), self.settings.dependencies)
        counts = dict.fromkeys((State.REQUESTED, State.APPROVED, State.IN_PROGRESS), 0)
        for c in self._live.values():
            if c.state in counts:
                counts[c.state] += 1
        for state, n in counts.items():
            ACTIVE.labels(state.value).set(n)


def _link(incident_id: int, incident: str, now: float) -> Edit:
    async def edit(c: Change) -> LogEntry | None:
        if incident_id in c.incidents:
            return None
        c.incidents.append(incident_id)
        return LogEntry(now, "system", "link_incident", {"incident": incident})

    return edit


def _readable(docs: Iterable[dict[str, Any]]) -> Iterator[Change]:
    """The stored changes this process can read: one written by another version or by hand must
    not stop the start or every later sync (skipped, logged and counted)."""
    for doc in docs:
        try:
            yield Change.from_doc(doc)
        except Exception as e:
            UNREADABLE.inc()
            log.error("change record %r cannot be read; skipped: %s", doc.get("id"), e)
