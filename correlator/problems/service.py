"""Problem management's one entry point: recurrence detection, known errors, the problem lifecycle.

Keeps unresolved problems, active known errors (compiled once) and the recent occurrences of each
signature in memory; each change is saved to the record store in one transaction. Incidents are
changed only through IncidentService's own API, so their timelines record who linked what.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import Counter, Gauge

from correlator import errors
from correlator.clock import Clock
from correlator.event import Event, Severity
from correlator.metrics import Children
from correlator.problems.conditions import Matcher, compile_conditions
from correlator.problems.model import (
    TRANSITIONS,
    IllegalTransition,
    KnownError,
    KnownErrorState,
    Problem,
    ProblemState,
    signature,
    split_signature,
)
from correlator.problems.settings import ProblemSettings
from correlator.records.edit import apply_edit, save_record
from correlator.records.store import LogEntry, Occurrence, RecordConflict, RecordStore

if TYPE_CHECKING:
    from correlator.incidents.model import Incident
    from correlator.incidents.service import IncidentService

log = logging.getLogger(__name__)

OPEN = Gauge("correlator_problems_open", "Problems not resolved, by state (open, known_error)", ["state"])
OPEN_BY = Children(OPEN)
RECURRING = Counter(
    "correlator_recurring_incidents_total", "Incidents linked to a problem as a recurrence of its signature"
)
KE_MATCHES = Counter("correlator_known_error_matches_total", "New incidents a known error was attached to")


class NotFound(errors.NotFound):
    pass


# Edits of a record, applied again to the stored version after a conflict (records/edit.py).
ProblemEdit = Callable[[Problem], Awaitable[LogEntry | None]]
KnownErrorEdit = Callable[[KnownError], Awaitable[LogEntry | None]]


class ProblemService:
    def __init__(
        self,
        store: RecordStore,
        settings: ProblemSettings,
        clock: Clock,
        incidents: IncidentService | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.incidents = incidents
        self._problems: dict[int, Problem] = {}  # unresolved
        self._by_sig: dict[str, Problem] = {}
        self._known: dict[int, tuple[KnownError, Matcher]] = {}  # active, by id
        self._known_order: list[tuple[KnownError, Matcher]] | None = None  # in id order (None: sort again)
        # (at, incident id) of each signature's recent occurrences. Lists, not deques: most
        # signatures of an alert storm occur once, and an empty deque alone is ten times a list's size.
        self._recent: dict[str, list[tuple[float, int]]] = {}
        self._newest = 0.0  # the latest occurrence time counted, and when `_recent` was last swept
        self._swept = 0.0
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Load from the (already open) record store."""
        for _, doc in await self.store.records("problems", ("open", "known_error"), limit=100_000):
            self._remember(Problem.from_doc(doc))
        for _, doc in sorted(await self.store.records("known_errors", ("active",), limit=100_000)):
            ke = KnownError.from_doc(doc)
            try:
                self._known[ke.id] = (ke, compile_conditions(ke.match))
            except ValueError as e:
                log.error("known error %s has invalid conditions, not matched: %s", ke.human_id, e)
        self._known_order = None
        since = self.clock.now() - self.settings.recurrence_window
        for sig, incident_id, at in await self.store.occurrences_since(since):
            self._recent.setdefault(sig, []).append((at, incident_id))
        self._refresh()

    # --- the pipeline ---------------------------------------------------------------------------

    async def on_opened(self, opened: Iterable[tuple[Incident, Event | None]]) -> None:
        """Count every opening and reopening of the batch, in order (`count_openings`), each
        incident with the event given at its first listing."""
        items = list(opened)
        first: dict[int, Event | None] = {}
        for inc, ev in items:
            first.setdefault(id(inc), ev)
        await self.count_openings([inc for inc, _ in items], lambda inc: first[id(inc)])

    async def count_openings(
        self, opened: list[Incident], event_of: Callable[[Incident], Event | None]
    ) -> None:
        """Count every opening and reopening of the batch, in order; `event_of` gives an incident's
        opening event, asked only when a known error may match it (the pipeline looks it up among
        the batch's requests only then).

        An incident opened and reopened twice in one batch is listed three times, but it is the same
        object, seen after the batch: its `reopen_count` is that of the last reopening. Each listing
        is numbered back from it, so each is its own occurrence. The batch's occurrences are saved
        together (one transaction), then each is matched and counted in order.
        """
        counted = _occurrences(opened)
        try:
            async with self._lock:
                new = await self.store.add_occurrences(counted)
        except Exception:  # counted as nothing, as a batch delivered again; known errors still match
            log.exception("problem management could not store %d incident openings", len(counted))
            new = set()
        for inc, o in zip(opened, counted, strict=True):
            try:
                if o.occurrence == 0 and inc.known_error_id is None and self._known:
                    await self._match_known_errors(inc, event_of(inc))
                # Seen before unless new (a batch delivered again); most occurrences of a storm
                # are a signature's first, counted without a lock or an await.
                if (o.incident_id, o.occurrence) in new and self._note(o):
                    await self._count(inc, o)
            except Exception:
                log.exception("problem management failed on %s", inc.human_id)
        self._sweep()

    async def _match_known_errors(self, inc: Incident, ev: Event | None) -> None:
        view = _view(inc, ev)
        if self._known_order is None:  # once per change of the known errors, not per incident
            self._known_order = sorted(self._known.values(), key=lambda km: km[0].id)
        for ke, match in self._known_order:
            if not match(view):
                continue
            fields: dict[str, Any] = {"known_error_id": ke.human_id, "workaround": ke.workaround}
            async with self._lock:
                ke = await self._update_known_error(ke, self._attach(inc.human_id))
                if ke.state is not KnownErrorState.ACTIVE:  # retired by another process meanwhile
                    continue
                p = self._problems.get(ke.problem_id or 0)
                if p is not None and inc.problem_id is None:
                    try:
                        p = await self._update_problem(p, self._link(inc.id, "system"))
                        fields["problem_id"] = p.human_id
                    except IllegalTransition as e:  # resolved by another process meanwhile
                        log.info("%s not linked: %s", inc.human_id, e)
                    except RecordConflict as e:  # the match is counted: the incident still gets it
                        log.error("%s not linked to %s: %s", inc.human_id, p.human_id, e)
            await self._edit_incident(inc.id, f"known-error:{ke.human_id}", fields)
            KE_MATCHES.inc()
            return

    def _sweep(self) -> None:
        """Forget the signatures with no occurrence in the last two recurrence windows, at most
        once per eighth of a window of occurrence time: a storm of one-off alerts (each its own
        signature) would otherwise keep one entry per alert for the daemon's life. Two windows,
        so that an occurrence counted late (replay acts at event time) still finds every entry
        that could be in its window."""
        window = self.settings.recurrence_window
        if self._newest - self._swept < window / 8:
            return
        self._swept = self._newest
        horizon = self._newest - 2 * window
        for sig in [
            sig for sig, recent in self._recent.items() if max((t for t, _ in recent), default=0.0) < horizon
        ]:
            del self._recent[sig]

    def _note(self, o: Occurrence) -> bool:
        """Add the occurrence to its signature's recent ones (only the pipeline changes those);
        True when it may link to or open a problem, which `_count` then does."""
        sig, at = o.signature, o.at
        if at > self._newest:
            self._newest = at
        recent = self._recent.get(sig)
        if recent is None:
            recent = self._recent[sig] = []
        recent.append((at, o.incident_id))
        horizon = at - self.settings.recurrence_window
        if recent[0][0] < horizon:
            expired = 1
            while recent[expired][0] < horizon:  # the entry just appended is never expired
                expired += 1
            del recent[:expired]
        return sig in self._by_sig or len(recent) >= self.settings.recurrence_count

    async def _count(self, inc: Incident, o: Occurrence) -> None:
        sig, at = o.signature, o.at
        async with self._lock:
            recent = self._recent.get(sig, [])
            p = self._by_sig.get(sig)
            if p is not None:
                if inc.id in p.incidents:
                    return
                try:
                    p = await self._update_problem(p, self._link(inc.id, "system"))
                except IllegalTransition as e:  # resolved by another process: the next recurrence opens one
                    log.info("%s not linked: %s", inc.human_id, e)
                    return
                linked = [inc.id]
            else:
                if len(recent) < self.settings.recurrence_count:
                    return
                ids = list(dict.fromkeys(i for _, i in recent))
                title = f"recurring: {inc.title}" if inc.title else f"recurring incidents on {inc.host}"
                p = Problem(title[:256], at, signature=sig, incidents=ids, updated_at=at)
                p.description = (
                    f"{len(recent)} incidents with key {inc.key!r}, rule {inc.rule!r}, CI {inc.host!r}"
                )
                detail = {"occurrences": len(recent), "signature": split_signature(sig)}
                await self._save_problem(p, LogEntry(self.clock.now(), "system", "open", detail))
                linked = ids
        RECURRING.inc(len(linked))
        for incident_id in linked:
            await self._edit_incident(incident_id, f"problem:{p.human_id}", {"problem_id": p.human_id})

    # --- people (API, CLI) ---------------------------------------------------------------------

    async def create_problem(self, actor: str, title: str, description: str, incidents: list[int]) -> Problem:
        async with self._lock:
            now = self.clock.now()
            p = Problem(
                title, now, description=description, incidents=list(dict.fromkeys(incidents)), updated_at=now
            )
            await self._save_problem(p, LogEntry(now, actor, "open", {}))
        for i in p.incidents:
            await self._edit_incident(i, actor, {"problem_id": p.human_id})
        return p

    async def link_incident(self, problem_id: int, incident_id: int, actor: str) -> Problem:
        async with self._lock:
            p = await self._update_problem(await self._problem(problem_id), self._link(incident_id, actor))
        await self._edit_incident(incident_id, actor, {"problem_id": p.human_id})
        return p

    async def resolve(
        self, problem_id: int, actor: str, root_cause: str = "", resolve_incidents: bool = False
    ) -> tuple[Problem, list[str]]:
        """Resolve the problem, retire its known errors, and (if asked) resolve its active incidents."""
        now = self.clock.now()

        async def edit(p: Problem) -> LogEntry:
            if ProblemState.RESOLVED not in TRANSITIONS[p.state]:
                raise IllegalTransition(f"{p.human_id} is {p.state.value}: cannot resolve")
            p.state = ProblemState.RESOLVED
            p.resolved_at = now
            if root_cause:
                p.root_cause = root_cause
            return LogEntry(now, actor, "resolve", {"root_cause": root_cause, "cascade": resolve_incidents})

        async with self._lock:
            p = await self._update_problem(await self._problem(problem_id), edit)
            # Resolved and saved: a conflict from here on must not answer "try again" (a retry
            # would be refused as resolved already), so it is logged and the known error left.
            for ke, _ in [km for km in self._known.values() if km[0].problem_id == p.id]:
                try:
                    await self._retire(ke, "system", f"problem {p.human_id} resolved")
                except RecordConflict as e:
                    log.error("%s resolved, but %s was not retired: %s", p.human_id, ke.human_id, e)
        resolved: list[str] = []
        if resolve_incidents and self.incidents is not None:
            from correlator.incidents.model import IllegalTransition as IncidentTransition

            for incident_id in p.incidents:
                notes = f"resolved with problem {p.human_id}" + (f": {root_cause}" if root_cause else "")
                try:
                    inc = await self.incidents.act(
                        incident_id, "resolve", actor, {"code": "problem_resolved", "notes": notes}
                    )
                except IncidentTransition:
                    continue  # already resolved or closed
                resolved.append(inc.human_id)
        return p, resolved

    async def create_known_error(
        self, actor: str, title: str, match: dict[str, Any], workaround: str, problem_id: int | None
    ) -> KnownError:
        matcher = compile_conditions(match)  # ConditionError (400) before anything is saved
        async with self._lock:
            now = self.clock.now()
            p = await self._problem(problem_id) if problem_id else None
            if p is not None and p.state is ProblemState.RESOLVED:
                raise IllegalTransition(f"{p.human_id} is resolved: cannot add a known error")
            ke = KnownError(title, match, workaround, now, problem_id, updated_at=now)
            await self._save_known_error(ke, LogEntry(now, actor, "create", {}))
            self._known[ke.id] = (ke, matcher)
            self._known_order = None
            # Saved: a conflict from here on must not answer "try again" (a retry would create a
            # second known error), so it is logged and the known error left unrecorded there.
            if p is not None:

                async def edit(p: Problem) -> LogEntry | None:
                    # Resolved meanwhile by another process: the known error stays, unrecorded there.
                    if p.state is ProblemState.RESOLVED:
                        log.warning("%s resolved meanwhile: %s not recorded on it", p.human_id, ke.human_id)
                        return None
                    p.known_error_id = ke.id
                    if p.state is ProblemState.OPEN:
                        p.state = ProblemState.KNOWN_ERROR
                    return LogEntry(now, actor, "known_error", {"known_error": ke.human_id})

                try:
                    await self._update_problem(p, edit)
                except RecordConflict as e:
                    log.error("%s created, but not recorded on %s: %s", ke.human_id, p.human_id, e)
            return ke

    async def retire_known_error(self, ke_id: int, actor: str) -> KnownError:
        async with self._lock:
            return await self._retire(await self._known_error(ke_id), actor, "")

    async def get_problem(self, problem_id: int) -> tuple[Problem, list[LogEntry]]:
        return await self._problem(problem_id), await self.store.log("problems", problem_id)

    async def get_known_error(self, ke_id: int) -> tuple[KnownError, list[LogEntry]]:
        return await self._known_error(ke_id), await self.store.log("known_errors", ke_id)

    async def query_problems(self, states: tuple[str, ...], limit: int, cursor: int | None) -> list[Problem]:
        return [Problem.from_doc(d) for _, d in await self.store.records("problems", states, limit, cursor)]

    async def query_known_errors(
        self, states: tuple[str, ...], limit: int, cursor: int | None
    ) -> list[KnownError]:
        return [
            KnownError.from_doc(d) for _, d in await self.store.records("known_errors", states, limit, cursor)
        ]

    async def trend(self, since: float, limit: int) -> list[dict[str, Any]]:
        """The most recurring incident signatures since `since`, with the open problem of each."""
        out = []
        for t in await self.store.trend(since, limit):
            p = self._by_sig.get(t.signature)
            out.append(
                {
                    "signature": split_signature(t.signature),
                    "count": t.count,
                    "last_at": t.last_at,
                    "problem_id": p.human_id if p is not None else None,
                }
            )
        return out

    # --- internals ------------------------------------------------------------------------------

    async def _problem(self, problem_id: int) -> Problem:
        p = self._problems.get(problem_id)
        if p is None:
            doc = await self.store.get("problems", problem_id)
            if doc is None:
                raise NotFound(f"no problem {problem_id}")
            p = Problem.from_doc(doc)
        return p

    async def _known_error(self, ke_id: int) -> KnownError:
        if ke_id in self._known:
            return self._known[ke_id][0]
        doc = await self.store.get("known_errors", ke_id)
        if doc is None:
            raise NotFound(f"no known error {ke_id}")
        return KnownError.from_doc(doc)

    async def _retire(self, ke: KnownError, actor: str, reason: str) -> KnownError:
        """Retire the known error; IllegalTransition when it is retired already (by hand, the
        API's 409) unless `reason` says why the system retires it (then nothing is left to do)."""
        now = self.clock.now()

        async def edit(ke: KnownError) -> LogEntry | None:
            if ke.state is KnownErrorState.RETIRED:
                if reason:
                    return None
                raise IllegalTransition(f"{ke.human_id} is already retired")
            ke.state = KnownErrorState.RETIRED
            return LogEntry(now, actor, "retire", {"reason": reason} if reason else {})

        ke = await self._update_known_error(ke, edit)
        self._known.pop(ke.id, None)
        self._known_order = None
        return ke

    def _link(self, incident_id: int, actor: str) -> ProblemEdit:
        now = self.clock.now()

        async def edit(p: Problem) -> LogEntry | None:
            if p.state is ProblemState.RESOLVED:
                raise IllegalTransition(f"{p.human_id} is resolved: cannot link incidents")
            if incident_id in p.incidents:
                return None
            p.incidents.append(incident_id)
            return LogEntry(now, actor, "link_incident", {"incident": f"INC-{incident_id:06d}"})

        return edit

    def _attach(self, incident: str) -> KnownErrorEdit:
        now = self.clock.now()

        async def edit(ke: KnownError) -> LogEntry | None:
            if ke.state is not KnownErrorState.ACTIVE:  # the stored copy, retired meanwhile
                return None
            ke.matched += 1
            return LogEntry(now, "system", "attach", {"incident": incident})

        return edit

    async def _update_problem(self, p: Problem, edit: ProblemEdit) -> Problem:
        """Apply `edit` to the problem and save it, again on the stored version when another process
        saved the problem since this copy was read (records/edit.py). Returns the copy saved."""
        return await apply_edit("problems", p, edit, self._save_problem, self._reread_problem)

    async def _update_known_error(self, ke: KnownError, edit: KnownErrorEdit) -> KnownError:
        return await apply_edit("known_errors", ke, edit, self._save_known_error, self._reread_known_error)

    async def _save_problem(self, p: Problem, entry: LogEntry) -> None:
        p.updated_at = entry.at
        await save_record(self.store, "problems", p, p.updated_at, [entry])
        self._remember(p)
        self._refresh()

    async def _save_known_error(self, ke: KnownError, entry: LogEntry) -> None:
        ke.updated_at = entry.at
        await save_record(self.store, "known_errors", ke, ke.updated_at, [entry])

    async def _reread_problem(self, problem_id: int) -> Problem:
        """The stored version of the problem, which replaces the copy in memory."""
        doc = await self.store.get("problems", problem_id)
        if doc is None:
            raise NotFound(f"no problem {problem_id}")
        p = Problem.from_doc(doc)
        self._remember(p)
        self._refresh()
        return p

    async def _reread_known_error(self, ke_id: int) -> KnownError:
        """The stored version of the known error, which replaces the copy in memory (its
        conditions are the same: a known error's are never edited)."""
        doc = await self.store.get("known_errors", ke_id)
        if doc is None:
            raise NotFound(f"no known error {ke_id}")
        ke = KnownError.from_doc(doc)
        known = self._known.get(ke.id)
        if known is not None:
            if ke.state is KnownErrorState.ACTIVE:
                self._known[ke.id] = (ke, known[1])
            else:  # retired by another process: no longer matched here
                del self._known[ke.id]
            self._known_order = None
        return ke

    def _remember(self, p: Problem) -> None:
        if p.state is ProblemState.RESOLVED:
            self._problems.pop(p.id, None)
            sig = p.signature
            if sig is not None and (held := self._by_sig.get(sig)) is not None and held.id == p.id:
                del self._by_sig[sig]  # compared by id, not `is`: memory may hold an older copy
            return
        self._problems[p.id] = p
        if p.signature is not None:
            self._by_sig[p.signature] = p

    async def _edit_incident(self, incident_id: int, actor: str, fields: dict[str, Any]) -> None:
        if self.incidents is None:
            return
        from correlator.incidents.model import IllegalTransition as IncidentTransition
        from correlator.incidents.service import NotFound as IncidentNotFound

        try:
            await self.incidents.act(incident_id, "update", actor, fields)
        except (IncidentTransition, IncidentNotFound) as e:  # closed or gone: the problem keeps the link
            log.info("could not update incident %d: %s", incident_id, e)

    def _refresh(self) -> None:
        counts = dict.fromkeys((ProblemState.OPEN, ProblemState.KNOWN_ERROR), 0)
        for p in self._problems.values():
            counts[p.state] += 1
        for state, n in counts.items():
            OPEN_BY(state.value).set(n)


def _occurrences(opened: list[Incident]) -> list[Occurrence]:
    """The occurrence each listing of `opened` counts (ProblemService.count_openings): each listing
    numbered back from the incident's last reopening."""
    left = collections.Counter(map(_ID, opened))  # listings of each incident not yet numbered
    out = []
    for inc in opened:
        left[inc.id] -= 1
        occurrence = max(inc.reopen_count - left[inc.id], 0)
        # Reopenings of one batch share the batch's time (the incident stage applies it at one instant).
        at = inc.reopened_at if occurrence and inc.reopened_at is not None else inc.opened_at
        out.append(Occurrence(signature(inc.key, inc.rule, inc.host), inc.id, occurrence, at))
    return out


_ID = attrgetter("id")


def _view(inc: Incident, ev: Event | None) -> Event:
    """The event known-error conditions see: the opening event plus `attributes.incident`."""
    facts = {"rule": inc.rule, "key": inc.key or "", "service": inc.service, "title": inc.title,
             "priority": inc.priority, "category": inc.category}  # fmt: skip
    if ev is None:
        return Event("", inc.opened_at, inc.opened_at, "incident", inc.host, "incident",
                     Severity(inc.severity), attributes={"incident": facts})  # fmt: skip
    return Event(ev.id, ev.time, ev.received, ev.source, ev.host, ev.type, ev.severity, ev.resource,
                 ev.message, {**ev.attributes, "incident": facts}, ev.fingerprint, ev.count, ev.last_seen)  # fmt: skip
