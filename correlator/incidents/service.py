"""Incident management's one entry point: applies correlation's requests and people's actions.

Keeps every unclosed incident in memory (indexed by id and correlation key) so the pipeline never
waits on a read; each change batch is saved in one transaction, then notified. Deadlines
(escalation, auto-close) live on the incidents and are run by `run_due(now)`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge

from correlator import errors
from correlator.clock import Clock
from correlator.incidents import lifecycle as lc
from correlator.incidents.model import ACTIVE, PRIORITIES, IllegalTransition, Incident, LogEntry, Status
from correlator.incidents.settings import IncidentSettings
from correlator.incidents.store import IncidentPage, IncidentQuery, IncidentStore
from correlator.logs import RateLimitedLog
from correlator.metrics import Children
from correlator.notify.incidents import Notifier
from correlator.responses import IncidentRequest

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

    async def open(self) -> None:
        await self.store.open()
        await self._load()
        self.notifier.resume(inc.to_api() for inc in self._by_id.values() if inc.status in ACTIVE)
        await self.notifier.start()

    async def close(self) -> None:
        await self.notifier.stop()
        await self.store.close()

    async def reload(self) -> None:
        """Read the unclosed incidents again: in the cluster a worker taking over a partition must
        see what the previous owner opened, or it would try to open them again (docs/cluster.md)."""
        async with self._lock:
            await self._load()

    @property
    def next_due(self) -> float | None:
        return self._next_due

    def active_for(self, key: str) -> Incident | None:
        return self._by_key.get(key)

    # --- correlation ---------------------------------------------------------------------------

    async def apply(self, requests: Iterable[IncidentRequest], event_time: bool = False) -> list[Incident]:
        """Apply a batch of requests; returns the incidents it opened or reopened (for Problem/Change).

        `event_time` (replay): each request acts at its event's time, not at the clock's, which has
        already moved to the end of the batch; a replayed batch spans minutes, a live one does not."""
        async with self._lock:
            if self.shared:
                requests = list(requests)
                await self._reread({r.key for r in requests})
            changes = lc.Changes(notifying=self.notifier.enabled)
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
            await self._commit(changes)
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

    async def run_due(self, now: float | None = None) -> int:
        """Escalate and auto-close what is due at `now` (default: the clock); returns how many acted."""
        now = self.clock.now() if now is None else now
        if self._next_due is None or now < self._next_due:
            return 0
        async with self._lock:
            changes = lc.Changes(notifying=self.notifier.enabled)
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
            await self._commit(changes)
            return acted

    # --- people (API) --------------------------------------------------------------------------

    async def create(self, actor: str, fields: dict[str, Any]) -> Incident:
        async with self._lock:
            changes = lc.Changes(notifying=self.notifier.enabled)
            key = fields.get("key")
            if key is not None and key in self._by_key and self._by_key[key].active:
                raise IllegalTransition(self._by_key[key], f"open another incident with key {key!r}")
            impact, urgency = fields.pop("impact", 3), fields.pop("urgency", 3)
            inc = lc.open_incident(
                self.settings, changes, self.clock.now(), actor, impact=impact, urgency=urgency, **fields
            )
            if key is not None:
                self._by_key[key] = inc
            await self._commit(changes)
            return inc

    async def act(self, incident_id: int, action: str, actor: str, args: dict[str, Any]) -> Incident:
        """ack, status, assign, comment, resolve, close, reopen: the state machine decides (409)."""
        async with self._lock:
            inc = await self._find(incident_id)
            if inc is None:
                raise NotFound(f"no incident {incident_id}")
            changes = lc.Changes(notifying=self.notifier.enabled)
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
            await self._commit(changes)
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
        inc = await self._find(incident_id)
        if inc is None:
            raise NotFound(f"no incident {incident_id}")
        return inc, await self.store.timeline(incident_id)

    async def query(self, q: IncidentQuery) -> IncidentPage:
        return await self.store.query(q)

    # --- persistence and bookkeeping -----------------------------------------------------------

    async def _commit(self, changes: lc.Changes) -> None:
        if not changes:
            return
        try:
            await self.store.save(changes)
        except Exception:
            log.exception("saving incident changes failed; reloading incidents from the store")
            await self._load()
            raise
        changes.count_opened()
        for inc in changes.new:
            self._by_id[inc.id] = inc
        touched = [*changes.new, *changes.dirty.values()]
        for inc in touched:
            if inc.status is Status.CLOSED:
                self._by_id.pop(inc.id, None)
                if inc.key is not None and self._by_key.get(inc.key) is inc:
                    del self._by_key[inc.key]
        if self.notifier.enabled:
            for kind, inc, targets in changes.notices:
                self.notifier.submit(kind, inc.to_api(), targets)
        self._refresh(touched)

    async def _find(self, incident_id: int) -> Incident | None:
        if not self.shared:
            return self._by_id.get(incident_id) or await self.store.get(incident_id)
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
