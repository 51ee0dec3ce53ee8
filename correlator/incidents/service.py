"""Incident management's one entry point: applies correlation's requests and people's actions.

Keeps every unclosed incident in memory (indexed by id and correlation key) so the pipeline never
waits on a read; each change batch is saved in one transaction, then notified. As the only writer
it gives the ids itself and does not wait for a batch's commit: the commits run one after another
in the background while the next batches are applied (docs/incidents.md "Commits"). Deadlines
(escalation, auto-close) live on the incidents and are run by `run_due(now)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from prometheus_client.metrics import Counter, Gauge

from correlator import errors, metrics
from correlator.clock import Clock
from correlator.incidents import lifecycle as lc
from correlator.incidents.model import ACTIVE, PRIORITIES, IllegalTransition, Incident, LogEntry, Status
from correlator.incidents.settings import IncidentSettings
from correlator.incidents.store import IncidentPage, IncidentQuery, IncidentStore, Rows, rows
from correlator.logs import RateLimitedLog
from correlator.metrics import Children
from correlator.notify.incidents import Notifier
from correlator.responses import IncidentRequest
from correlator.store.faults import transient

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

OPEN = Gauge("correlator_incidents_open", "Incidents not yet resolved, by priority", ["priority"])
REQUESTS = Counter(
    "correlator_incident_requests_total",
    "Incident requests from correlation by outcome (opened, updated, reopened, resolved, ignored)",
    ["outcome"],
)
REQUESTS_BY = Children(REQUESTS)
OPEN_BY = Children(OPEN)


class NotFound(errors.NotFound):
    pass


class CommitFailed(Exception):
    """A person's change was not stored: the store refused it for good (not a full disk), or the
    service stopped before it was."""


class _IdsRefused(CommitFailed):
    """The store refused for good to reserve ids: the change was not made."""


class IncidentService:
    def __init__(
        self, store: IncidentStore, settings: IncidentSettings, clock: Clock, notifier: Notifier | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.notifier = notifier or Notifier(settings.notify)
        self.on_deadline: Callable[[float | None], None] | None = None  # the scheduler's hook
        self._by_id: dict[int, Incident] = {}
        self._by_key: dict[str, Incident] = {}
        self._lock = asyncio.Lock()
        self._next_due: float | None = None
        self._due: dict[int, float] = {}  # id -> deadline, of the unclosed incidents that have one
        self._due_heap: list[tuple[float, int]] = []  # (deadline, id), with stale entries
        self._active: dict[int, str] = {}  # id -> priority, of the active incidents
        self._active_count: dict[str, int] = dict.fromkeys(PRIORITIES, 0)  # of `_active`, by priority
        # Replay and `rules explain` read what each request did here (None: not recorded).
        self.outcomes: list[tuple[IncidentRequest, str, Incident | None]] | None = None
        # Other processes write the same store (the cluster, docs/cluster.md): read an incident
        # again before changing it, so a change made elsewhere is never written over.
        self.shared = False
        self._last_id = 0  # the last id given, when not shared
        # Ids up to here are reserved in the store (`reserve_ids`): given without asking it, never
        # given again after a crash, although other stores (problems) may hold them before the
        # commit that inserts them (docs/incidents.md "Commits").
        self._ceiling = 0
        self.id_block = 4096  # the fewest ids reserved at a time
        # The newest commit; each waits for the one before it, so the store sees them in order,
        # one transaction at a time. True once stored, False when refused for good.
        self._tail: asyncio.Task[bool] | None = None
        self._in_flight: deque[asyncio.Task[bool]] = deque()  # the commits not yet finished, oldest first
        self.max_in_flight = 8  # a change waits for the oldest beyond this: each holds its rows
        # Commit tokens (IncidentStore.write): distinct from those of earlier runs of the store.
        self._tokens = itertools.count(secrets.randbits(62))
        self._lost = False  # a commit was refused for good: memory is ahead of the store until read again
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False  # close() began: no commit is started, no recovery retried any more
        self.finish_seconds = 5.0  # on close, for the commits in flight (a store that keeps failing)
        self.retry_seconds = 0.1  # the first wait before a commit is tried again (doubled up to 5 s)
        self.read_wait_seconds = 1.0  # the longest a read waits for the commits in flight

    async def open(self) -> None:
        await self.store.open()
        try:
            await self._load()
            self._last_id = self._ceiling = await self.store.last_id()
            self.notifier.resume(inc.to_api() for inc in self._by_id.values() if inc.status in ACTIVE)
            await self.notifier.start()
        except BaseException:
            # An SQLite store's threads are no daemons: left open they would keep the process
            # alive after the error. The notifier leaves nothing open when its start fails.
            await self.store.close()
            raise

    async def close(self) -> None:
        """Store the commits in flight first (bounded: what is left was never acknowledged). A
        change asked for from now on (a scheduler's deadline run not awaited at stop) fails with
        CommitFailed rather than start a commit against the store being closed."""
        self._closing = True
        tail = self._tail
        if tail is not None and not tail.done():
            try:
                await asyncio.wait_for(asyncio.shield(tail), self.finish_seconds)
            except TimeoutError:
                log.error("incident commits still failing at stop; abandoned (their events come back)")
                tail.cancel()  # each commit waits for the one before: this cancels them all
        for task in (tail, self._recovery):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ceiling > self._last_id:
            # The ids reserved and not given are given back, so that numbers run on across a
            # clean restart; only a crash leaves a gap, as a sequence's cache does.
            try:
                await self.store.reserve_ids(self._last_id)
            except Exception as e:
                log.warning("could not give back the incident ids reserved and not used: %s", e)
        await self.notifier.stop()
        await self.store.close()

    async def reload(self) -> None:
        """Read the unclosed incidents again: in the cluster a worker taking over a partition must
        see what the previous owner opened, or it would try to open them again (docs/cluster.md)."""
        async with self._lock:
            await self.settled()
            await self._load()

    @property
    def pending(self) -> asyncio.Task[bool] | None:
        """The newest commit while it runs: awaiting it waits for every change made so far (the
        runner does, before it acknowledges the batch). Await it shielded, never cancel it."""
        tail = self._tail
        return tail if tail is not None and not tail.done() else None

    async def settled(self) -> None:
        """Wait until every change made so far is stored (or refused for good)."""
        tail = self.pending
        if tail is not None:
            await _outcome(tail)

    async def caught_up(self) -> None:
        """Before a read from the store: wait for the commits in flight, so a client reads what it
        wrote, but not past `read_wait_seconds`: while the store fails (a full disk, retried) a
        read shows what it holds rather than hang (docs/incidents.md "Commits")."""
        tail = self.pending
        if tail is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_outcome(tail), self.read_wait_seconds)

    @property
    def next_due(self) -> float | None:
        return self._next_due

    def active_for(self, key: str) -> Incident | None:
        return self._by_key.get(key)

    # --- correlation ---------------------------------------------------------------------------

    async def apply(self, requests: Iterable[IncidentRequest], event_time: bool = False) -> list[Incident]:
        """Apply a batch of requests; returns the incidents it opened or reopened (for Problem/Change).

        `event_time` (replay): each request acts at its event's time, not at the clock's, which has
        already moved to the end of the batch; a replayed batch spans minutes, a live one does not.

        When the store refuses for good to reserve ids, the batch's requests are dropped (counted as
        a stage error) as a refused commit's changes are: nothing is raised into the pipeline."""
        requests = requests if isinstance(requests, list) else list(requests)
        try:
            return await self._apply(requests, event_time)
        except _IdsRefused:
            return []

    async def _apply(self, requests: list[IncidentRequest], event_time: bool) -> list[Incident]:
        # Each request opens at most one incident: room for that many before anything changes.
        async with self._locked(len(requests)):
            if self.shared:
                await self._reread({r.key for r in requests})
            changes = self._changes()
            now = self.clock.now()
            opened: list[Incident] = []
            outcomes: dict[str, int] = {}
            for req in requests:
                outcome = self._apply_one(changes, req, min(now, req.event.time) if event_time else now)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if self.outcomes is not None:
                    self.outcomes.append((req, outcome, self._by_key.get(req.key)))
                if outcome in ("opened", "reopened"):
                    opened.append(self._by_key[req.key])
            for outcome, n in outcomes.items():  # once per batch: a storm opens thousands
                REQUESTS_BY(outcome).inc(n)
            await self._commit(changes)  # started, not awaited: `pending`
            return opened

    def _apply_one(self, changes: lc.Changes, req: IncidentRequest, now: float) -> str:
        if req.impact not in (None, 1, 2, 3) or req.urgency not in (None, 1, 2, 3):
            _ratelog.warning(
                f"levels:{req.rule}", "rule %s asked for impact %r urgency %r (expected 1..3): using the "
                "event severity instead", req.rule, req.impact, req.urgency,
            )  # fmt: skip
            req = dataclasses.replace(req, impact=None, urgency=None)
        s = self.settings
        actor = f"rule:{req.rule}"
        inc = self._by_key.get(req.key)
        if req.action == "resolve":
            if inc is None or not inc.active:
                return "ignored"
            lc.link_event(s, changes, inc, req.event, actor)
            inc.resolution_code = "auto_cleared"
            inc.resolution_notes = req.description or f"cleared by {req.event.type} on {req.event.host}"
            lc.transition(s, changes, inc, Status.RESOLVED, now, actor, "resolve", code=inc.resolution_code)
            return "resolved"
        if inc is not None and inc.active:
            self._update(changes, inc, req, actor)
            return "updated"
        if inc is not None and inc.status is Status.RESOLVED:
            assert inc.resolved_at is not None
            if now - inc.resolved_at <= s.reopen_window:
                if req.action == "update":  # a trailing event after the clear: keep it, do not reopen
                    lc.link_event(s, changes, inc, req.event, actor)
                    return "updated"
                lc.transition(s, changes, inc, Status.NEW, now, actor, "reopen", reason="the key fired again")
                self._update(changes, inc, req, actor)
                return "reopened"
        ev = req.event
        attrs = ev.attributes
        service, category = attrs.get("service"), attrs.get("category")
        inc = lc.open_for_event(
            s,
            changes,
            now,
            actor,
            ev,
            req.impact,
            req.urgency,
            title=req.title or f"{ev.type} on {ev.host}",
            major=req.major,
            description=req.description or ev.message,
            host=ev.host,
            service=service if isinstance(service, str) else "",
            category=category if isinstance(category, str) else "",
            assignment_group=req.assignment_group or "",
            key=req.key,
            rule=req.rule,
        )
        self._by_key[req.key] = inc
        return "opened"

    def _update(self, changes: lc.Changes, inc: Incident, req: IncidentRequest, actor: str) -> None:
        lc.link_event(self.settings, changes, inc, req.event, actor, req.impact, req.urgency)
        if req.major and not inc.major:
            inc.major = True
            changes.log(inc, req.event.time, actor, "major", reason=f"rule {req.rule}")
            changes.notify("major", inc)
        if req.assignment_group and not inc.assignment_group:
            inc.assignment_group = req.assignment_group
            changes.log(inc, req.event.time, actor, "assign", group=req.assignment_group)

    # --- deadlines -----------------------------------------------------------------------------

    async def run_due(self, now: float | None = None, wait: bool = True) -> int:
        """Escalate and auto-close what is due at `now` (default: the clock); returns how many acted.
        `wait`: return once the changes are stored (the pipeline does not wait: `pending`)."""
        now = self.clock.now() if now is None else now
        if self._next_due is None or now < self._next_due:
            return 0
        async with self._locked(0):
            changes = self._changes()
            acted = 0
            for inc in list(self._by_id.values()):
                due = lc.deadline(inc)
                if due is None or due > now:
                    continue
                acted += 1
                if inc.close_at is not None and inc.close_at <= now:
                    reason = f"resolved for {self.settings.close_after:.0f}s"
                    lc.transition(
                        self.settings,
                        changes,
                        inc,
                        Status.CLOSED,
                        inc.close_at,
                        "system",
                        "close",
                        reason=reason,
                    )
                else:
                    lc.escalate_due(self.settings, changes, inc, now)
            commit = await self._commit(changes)
        if wait:
            await self._stored(commit)
        return acted

    # --- people (API) --------------------------------------------------------------------------

    async def create(self, actor: str, fields: dict[str, Any]) -> Incident:
        async with self._locked(1):
            changes = self._changes()
            key = fields.get("key")
            if key is not None and key in self._by_key and self._by_key[key].active:
                raise IllegalTransition(self._by_key[key], f"open another incident with key {key!r}")
            impact, urgency = fields.pop("impact", 3), fields.pop("urgency", 3)
            inc = lc.open_incident(
                self.settings, changes, self.clock.now(), actor, impact=impact, urgency=urgency, **fields
            )
            if key is not None:
                self._by_key[key] = inc
            commit = await self._commit(changes)
        await self._stored(commit)
        return inc

    async def act(self, incident_id: int, action: str, actor: str, args: dict[str, Any]) -> Incident:
        """ack, status, assign, comment, resolve, close, reopen: the state machine decides (409)."""
        async with self._locked(0):
            inc = await self._find(incident_id)
            if inc is None:
                raise NotFound(f"no incident {incident_id}")
            changes = self._changes()
            now = self.clock.now()
            s = self.settings
            note = args.get("note") or ""
            if action == "comment":
                changes.log(inc, now, actor, "comment", text=args["text"])
            elif action == "assign":
                if inc.status is Status.CLOSED:
                    raise IllegalTransition(inc, "assign")
                old = {"group": inc.assignment_group, "assignee": inc.assignee}
                inc.assignment_group = args.get("group", inc.assignment_group)
                inc.assignee = args.get("assignee", inc.assignee)
                new = {"group": inc.assignment_group, "assignee": inc.assignee}
                changes.log(inc, now, actor, "assign", **{"from": old, "to": new})
                changes.notify("update", inc)
            elif action == "update":
                self._edit(changes, inc, now, actor, args)
            else:
                to, extra = self._target(inc, action, args)
                lc.transition(
                    s, changes, inc, to, now, actor, action, **extra, **({"note": note} if note else {})
                )
            commit = await self._commit(changes)
        await self._stored(commit)
        return inc

    def _target(self, inc: Incident, action: str, args: dict[str, Any]) -> tuple[Status, dict[str, Any]]:
        if action == "ack":
            return Status.ACKNOWLEDGED, {}
        if action == "status":
            return Status(args["status"]), {}
        if action == "resolve":
            if not inc.active:
                raise IllegalTransition(inc, "resolve")
            inc.resolution_code = args.get("code") or "resolved"
            inc.resolution_notes = args.get("notes") or ""
            return Status.RESOLVED, {"code": inc.resolution_code}
        if action == "close":
            return Status.CLOSED, {}
        if action == "reopen":
            return Status.NEW, {"reason": args.get("reason") or ""}
        raise ValueError(f"unknown action {action!r}")

    def _edit(self, changes: lc.Changes, inc: Incident, now: float, actor: str, args: dict[str, Any]) -> None:
        if inc.status is Status.CLOSED:
            raise IllegalTransition(inc, "edit")
        before = {k: getattr(inc, k) for k in args}
        for k, v in args.items():
            setattr(inc, k, v)
        if "impact" in args or "urgency" in args:
            inc.priority = self.settings.priority(inc.impact, inc.urgency)
            if "major" not in args and lc.is_major(self.settings, inc.priority) and not inc.major:
                inc.major = True
                changes.notify("major", inc)
            lc.schedule(inc, self.settings)
        changes.log(inc, now, actor, "update", **{"from": before, "to": args})
        changes.notify("update", inc)

    async def get(self, incident_id: int) -> tuple[Incident, list[LogEntry]]:
        await self.caught_up()  # a client reads its own writes
        inc = await self._find(incident_id, settle=False)
        if inc is None:
            raise NotFound(f"no incident {incident_id}")
        return inc, await self.store.timeline(incident_id)

    async def query(self, q: IncidentQuery) -> IncidentPage:
        await self.caught_up()
        return await self.store.query(q)

    # --- persistence and bookkeeping -----------------------------------------------------------

    def _changes(self) -> lc.Changes:
        return lc.Changes(notifying=self.notifier.enabled)

    async def _room(self, new: int) -> None:
        """At the top of a change, under the lock, before memory is touched: wait for room among
        the commits in flight and reserve ids for `new` new incidents (at most). Both may wait as
        long as a store outage lasts; meanwhile memory holds only whole changes (every incident
        indexed, gauges and deadlines current), and a caller cancelled here has changed nothing."""
        if not self.shared and not self._closing:
            flight = self._in_flight
            while flight and flight[0].done():
                flight.popleft()
            if len(flight) >= self.max_in_flight:
                # Bounds the rows held by every caller, replay too, which never waits for a commit
                # otherwise. The commits do not take the lock: waiting under it is safe.
                await _outcome(flight[0])  # left in place if cancelled meanwhile
                flight.popleft()
            if self._last_id + new > self._ceiling:
                await self._reserve(self._last_id + max(self.id_block, 2 * new))
        if self._closing:
            raise CommitFailed("the incident service is stopping")

    async def _commit(self, changes: lc.Changes) -> asyncio.Task[bool] | None:
        """Under the lock, after `_room`. The only writer starts the commit after those before it
        and returns it; a shared store (docs/cluster.md) gives the ids, so its commit is awaited here."""
        if not changes:
            return None
        if self._closing:  # only a shared store's reads come between `_room` and here
            raise CommitFailed("the incident service is stopping")
        if self.shared:
            await self._save_shared(changes)
            return None
        new = changes.new
        # `_room` reserved them: no wait between a change in memory and its `_settle`.
        assert self._last_id + len(new) <= self._ceiling, "more incidents opened than room was made for"
        for i, inc in enumerate(new, self._last_id + 1):
            inc.id = i
        self._last_id += len(new)
        flight = self._in_flight
        # What is written and notified is taken now: the next batches change the same incidents
        # in memory while this commit waits for its turn.
        snapshot = rows(changes, next(self._tokens))
        notices = [(kind, inc.to_api(), targets) for kind, inc, targets in changes.notices]
        self._settle(changes)
        task = asyncio.create_task(
            self._chained(self._tail, snapshot, changes, notices), name="incident commit"
        )
        self._tail = task
        flight.append(task)
        return task

    async def _reserve(self, ceiling: int) -> None:
        """Reserve the ids up to `ceiling` before any of them is given (under the lock, before the
        change is made). A full disk is retried as a commit is, until the service stops; refused
        for good, the change is not made: counted as a stage error, as a refused commit is."""
        delay = self.retry_seconds
        while not self._closing:
            try:
                await self.store.reserve_ids(ceiling)
                self._ceiling = ceiling
                return
            except Exception as e:
                if not transient(e):
                    metrics.STAGE_ERRORS.labels("incidents").inc()
                    _ratelog.error(
                        "reserve-ids", "the incident store refused to reserve ids; change dropped: %r", e
                    )
                    raise _IdsRefused("the incident store refused to reserve ids") from e
                log.error("reserving incident ids failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _chained(
        self,
        before: asyncio.Task[bool] | None,
        snapshot: Rows,
        changes: lc.Changes,
        notices: list[tuple[str, dict[str, Any], tuple[str, ...]]],
    ) -> bool:
        """Write after `before`: retried while the store fails for its own reason (disk full,
        locked), so nothing is lost meanwhile and the runner, which waits for this before its ack,
        pushes back; refused for good, the changes are dropped and the incidents read again."""
        if before is not None:
            await before
        if self._lost:  # made on top of changes the store refused: dropped with them
            metrics.STAGE_ERRORS.labels("incidents").inc()
            return False
        delay = self.retry_seconds
        retry = False
        while True:
            try:
                await self.store.write(snapshot, retry)
                break
            except Exception as e:
                retry = True  # it may have been stored all the same: a lost connection during COMMIT
                if not transient(e):
                    self._lose(e)
                    return False
                log.error("saving incident changes failed, retrying in %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            changes.count_opened()
            for kind, doc, targets in notices:
                self.notifier.submit(kind, doc, targets)
        except Exception:  # stored: a notice that cannot be made must not undo that
            log.exception("incident notifications failed")
        return True

    def _lose(self, error: Exception) -> None:
        """The store refused a commit for good (a bug or a broken table, not a full disk): as when a
        pipeline stage fails, its changes are lost; memory is read again from the store once the
        commits already started (made on top of it, dropped too) have finished: by the next change
        (`_locked`), or by a task of its own when none comes."""
        self._lost = True
        metrics.STAGE_ERRORS.labels("incidents").inc()
        log.error(
            "saving incident changes failed; they are dropped and the incidents read again", exc_info=error
        )
        self._recovery = asyncio.create_task(self._recover(), name="incident reload")

    async def _recover(self) -> None:
        with contextlib.suppress(CommitFailed):  # stopping: nothing left to read again for
            async with self._locked(None):
                pass

    @contextlib.asynccontextmanager
    async def _locked(self, new: int | None) -> AsyncIterator[None]:
        """The lock of every change; memory read again first after a commit was refused for good,
        then `_room` for `new` new incidents (None: no change follows)."""
        async with self._lock:
            if self._lost:
                await self.settled()  # the commits made on top of the lost one: dropped too
                delay = self.retry_seconds
                while True:
                    if self._closing:  # the store is being closed: it would fail until the end
                        raise CommitFailed("the incident service is stopping")
                    try:
                        await self._load()
                        break
                    except Exception as e:
                        log.error("reading the incidents again failed, retrying in %.1fs: %s", delay, e)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                self._lost = False
            if new is not None:
                await self._room(new)
            yield

    async def _stored(self, commit: asyncio.Task[bool] | None) -> None:
        """A person's change (or a deadline's) returns once stored; one that changed nothing, once
        the changes before it are."""
        if commit is None:
            await self.settled()
        elif not await _outcome(commit):
            raise CommitFailed("the incident store refused the change")

    async def _save_shared(self, changes: lc.Changes) -> None:
        try:
            await self.store.save(changes)
        except Exception:
            log.exception("saving incident changes failed; reloading incidents from the store")
            await self._load()
            raise
        changes.count_opened()
        self._settle(changes)
        if self.notifier.enabled:
            for kind, inc, targets in changes.notices:
                self.notifier.submit(kind, inc.to_api(), targets)

    def _settle(self, changes: lc.Changes) -> None:
        """Memory after a change batch: new incidents indexed, closed ones let go."""
        # A storm's batch is mostly new incidents: their ids are fresh, so none is yet in the
        # deadline or active-priority maps, which `_refresh` would otherwise look up for each.
        closed = self._index_new(changes.new)
        dirty = changes.dirty.values()
        for inc in dirty:
            if inc.status is Status.CLOSED:
                closed.append(inc)
        for inc in closed:
            self._by_id.pop(inc.id, None)
            if inc.key is not None and self._by_key.get(inc.key) is inc:
                del self._by_key[inc.key]
        self._refresh(dirty)

    def _index_new(self, new: list[Incident]) -> list[Incident]:
        """Index a commit's new incidents and add them to the deadline and active-priority maps, as
        `_refresh` would (a fresh id is in none of them yet); returns those already closed, which
        are not kept."""
        by_id, due_at, heap, active, count = (
            self._by_id,
            self._due,
            self._due_heap,
            self._active,
            self._active_count,
        )
        closed: list[Incident] = []
        is_active, closed_status = ACTIVE.__contains__, Status.CLOSED  # an enum member's look-up costs
        # A new id is in none of the maps yet (ids only grow, and a save that failed never reached
        # here), so nothing stale is looked up or removed.
        for inc in new:
            i, status = inc.id, inc.status
            if status is closed_status:
                closed.append(inc)
                continue
            by_id[i] = inc
            if inc.next_escalation_at is not None or inc.close_at is not None:  # no call when neither
                d = lc.deadline(inc)
                if d is not None:
                    due_at[i] = d
                    heapq.heappush(heap, (d, i))
            if is_active(status):
                prio = active[i] = inc.priority
                count[prio] += 1
        return closed

    async def _find(self, incident_id: int, settle: bool = True) -> Incident | None:
        """`settle`: a closed incident is read from the store once its close is stored (a change
        of it must not be made on an older version); a read has waited already (`caught_up`)."""
        if not self.shared:
            inc = self._by_id.get(incident_id)
            if inc is None:
                if settle:
                    await self.settled()
                inc = await self.store.get(incident_id)
            return inc
        inc = await self.store.get(incident_id)
        if inc is not None:
            self._adopt([inc])
        return inc

    async def _reread(self, keys: set[str]) -> None:
        """Shared store: take the current version of the newest incident of each key."""
        keys.discard("")
        if keys:
            self._adopt(await self.store.latest_for_keys(sorted(keys)))

    def _adopt(self, fresh: list[Incident]) -> None:
        """Replace the cached copies by `fresh` ones read from the store (closed ones are dropped)."""
        for inc in fresh:
            self._by_id.pop(inc.id, None)
            current = self._by_key.get(inc.key) if inc.key is not None else None
            if inc.key is not None and current is not None and current.id <= inc.id:
                del self._by_key[inc.key]  # this copy, or an older incident of the key
                current = None
            if inc.status is Status.CLOSED:
                continue
            self._by_id[inc.id] = inc
            if inc.key is not None and current is None:
                self._by_key[inc.key] = inc
        if fresh:
            self._refresh(fresh)

    async def _load(self) -> None:
        self._by_id.clear()
        self._by_key.clear()
        for inc in await self.store.load_unclosed():
            lc.schedule(inc, self.settings)  # the policy may have changed since the last run
            self._by_id[inc.id] = inc
            if inc.key is not None:
                current = self._by_key.get(inc.key)
                if current is None or inc.id > current.id:
                    self._by_key[inc.key] = inc
        self._refresh()

    def _refresh(self, touched: Iterable[Incident] | None = None) -> None:
        """Update the open-incident gauge and the next deadline from the incidents a commit
        `touched` (None: all of them, after a load). Per incident, not per commit over all of them:
        in an alert storm tens of thousands are unclosed, so the per-priority counts are kept up to
        date as incidents change and the next deadline comes from a heap (stale entries, whose
        incident's deadline has since changed, are dropped when they reach the top)."""
        if touched is None:
            self._due.clear()
            self._due_heap.clear()
            self._active.clear()
            self._active_count = dict.fromkeys(PRIORITIES, 0)
            touched = self._by_id.values()
        by_id, due_at, active, count = self._by_id, self._due, self._active, self._active_count
        for inc in touched:
            i = inc.id
            tracked = by_id.get(i) is inc
            d = lc.deadline(inc) if tracked else None
            if d is None:
                due_at.pop(i, None)
            elif due_at.get(i) != d:
                due_at[i] = d
                heapq.heappush(self._due_heap, (d, i))
            was = active.get(i)
            now = inc.priority if tracked and inc.status in ACTIVE else None
            if was != now:
                if was is not None:
                    count[was] -= 1
                    del active[i]
                if now is not None:
                    count[now] += 1
                    active[i] = now
        heap = self._due_heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if len(heap) > 2 * len(self._due) + 64:  # mostly stale: rebuild
            self._due_heap = heap = [(d, i) for i, d in self._due.items()]
            heapq.heapify(heap)
        due = heap[0][0] if heap else None
        for prio in PRIORITIES:
            OPEN_BY(prio).set(self._active_count[prio])
        if due != self._next_due:
            self._next_due = due
            if self.on_deadline is not None:
                self.on_deadline(due)


async def _outcome(commit: asyncio.Task[bool]) -> bool:
    """Wait for `commit` without cancelling it: True once stored; False if refused for good,
    abandoned at close (cancelled) or failed. The waiter's own cancellation still propagates."""
    try:
        return await asyncio.shield(commit)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not commit.cancelled() or (task is not None and task.cancelling()):
            raise
        return False
    except Exception:
        log.exception("an incident commit failed")
        return False
