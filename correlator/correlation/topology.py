"""topology / root cause: while a CI's upstream CI is down, what the CI reports is a symptom of it.

A `down` event on a CI with no upstream CI down makes it a root cause: it is annotated
`topology: root` with its impacted services, and incident `<rule>:<ci>` is opened (hook `root`).
While a CI has a down ancestor, a down event or any event matching `symptoms` from it is annotated
`topology: symptom`, `root_cause: <ci>` and attached to the root's incident (update; hook
`symptom`); with `suppress` it also stops there (later level-2 rules do not see it). A link may name
the port on each side (topology_file.py), so an event about the port facing a down CI is a symptom
of it too, whichever side reports it.

With `suppress`, the rule is also a gate on the incidents the other level-2 rules ask for (the
correlate stage calls `gate` on every batch's requests): an `open` for a CI that is a symptom at that
moment becomes an update of the root's incident, and is held. Held opens are released when the
root's settle time ends, for the CIs still down then (hold-down): a clear for a held key (its
rule's `resolve`) drops it. A root that goes down after its descendants takes them: their
topology incidents, and the incidents other rules opened for them within `adopt_within` before it,
are resolved into the root's and held like the others.

When a root's `up` event arrives its incident is resolved (hook `clear`), but its symptoms stay
attached for `settle` seconds: devices behind a core answer a few seconds after it. Then they are
re-evaluated: attached to another down ancestor, or promoted to roots with their own incident.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from correlator.correlation.actions import SUPPRESSED_BY, Template, mark_suppressed
from correlator.correlation.core import Engine, Hooks, Key, KeyTable, Match
from correlator.correlation.topology_file import Topology
from correlator.event import Event, Severity
from correlator.responses import IncidentRequest, Response


class _Down:
    __slots__ = ("event", "root")

    def __init__(self, event: Event, root: str | None) -> None:
        self.event = event
        self.root = root  # None: this CI is itself a root cause


def host_ci(ev: Event) -> str:
    return ev.host


_NOT_A_PROBLEM = (Severity.CLEAR, Severity.INFO)


def a_problem(ev: Event) -> bool:
    """The default symptom matcher: every problem a dependent CI reports (warning and above).

    Clears and info events are not symptoms: they say that something works (a heartbeat, a link
    back up), and the rules after this one must see them to close what they track.
    """
    return ev.severity not in _NOT_A_PROBLEM


class TopologyRule(Engine):
    kind = "topology"
    hook_names = ("root", "symptom", "clear")

    def __init__(
        self,
        name: str,
        down: Match,
        up: Match,
        topology: Topology,
        ci: Callable[[Event], str] = host_ci,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        title: Template | None = None,
        incidents: bool = True,
        symptoms: Match | None = None,
        settle: float = 0.0,
        adopt_within: float = math.inf,
        suppress: bool = False,
        down_up_types: frozenset[str] | None = None,
    ) -> None:
        """`down_up_types`: the types the `down` and `up` matchers can match, when they say (None:
        any type); an event of another type is tested as a symptom only."""
        super().__init__(name, self._matches, lambda e: (ci(e),), hooks)
        self.match_down = down
        self.match_up = up
        self.match_symptom = symptoms
        self.topology = topology
        self.ci = ci
        self.title = title
        self.incidents = incidents
        self.settle = settle
        self.adopt_within = adopt_within
        self.suppress = suppress
        self._suppressed = SUPPRESSED_BY(name)  # correlator_correlation_suppressed_total{rule}
        self.down: KeyTable[_Down] = KeyTable(name, max_keys)
        # Roots that came back, until the end of their settle time (insertion order = deadline order).
        self.settling: dict[str, float] = {}
        # Opens other rules asked for on symptoms, per root, by incident key: released after settle.
        self.held: dict[str, dict[str, IncidentRequest]] = {}
        # Opens let through recently (time, CI, request): a root arriving late takes them.
        self.recent: deque[tuple[float, str, IncidentRequest]] = deque()
        self.max_keys = max_keys
        self.down_up_types = down_up_types

    # -- events -----------------------------------------------------------------------------------
    def _matches(self, ev: Event) -> bool:
        # A symptom candidate is only of interest while something is down or settling: the rule does
        # not count (or trace) the events of a healthy network.
        types = self.down_up_types
        if (types is None or ev.type in types) and (self.match_down(ev) or self.match_up(ev)):
            return True
        symptoms = self.match_symptom
        return symptoms is not None and bool(self.down or self.settling) and symptoms(ev)

    def on_event(self, ev: Event, t: float) -> None:
        c = self.ci(ev)
        types = self.down_up_types
        either = types is None or ev.type in types
        if either and self.match_up(ev):
            self._up(c, ev, t)
        elif either and self.match_down(ev):
            self._down(c, ev, t)
        else:  # a symptom candidate (matched only while something is down or settling)
            root = self.symptom_root(c, ev.resource)
            if root is None:
                return
            self._mark(ev, c, root)
            self._incident("update", root, ev)
            self.fire("symptom", ev, (c,), False, root_cause=root)
            self._suppress(ev)

    def root_of(self, c: str) -> str | None:
        """The down (or settling) ancestor with no down ancestor of its own, nearest first: O(depth)."""
        settling = self.settling
        for a in self.topology.ancestors(c):
            d = self.down.get((a,))
            if d is not None and d.root is None:
                return a
            if a in settling:
                return a
        return None

    def symptom_root(self, c: str, resource: str) -> str | None:
        """The root `c`'s event is a symptom of: its own when `c` is down, a down ancestor's, or that
        of the CI at the other end of the named link on `resource` when that CI is down or settling."""
        own = self.down.get((c,))
        if own is not None:
            return own.root or c  # a down CI's other alarms are part of its outage
        root = self.root_of(c)
        if root is not None or not resource:
            return root
        other = self.topology.ports.get((c, resource))
        if other is None:
            return None
        d = self.down.get((other,))
        if d is not None:
            return d.root or other
        return other if other in self.settling else None

    def _down(self, c: str, ev: Event, t: float) -> None:
        known = self.down.get((c,))
        self.settling.pop(c, None)  # down again while settling: its symptoms are still its own
        root = self.root_of(c)
        if known is not None:
            known.event = ev
            self._mark(ev, c, root)
            self._incident("update", root or c, ev)
            if root is not None:
                self._suppress(ev)
            return
        self.down.put((c,), _Down(ev, root))
        self._mark(ev, c, root)
        if root is not None:
            self._incident("update", root, ev)
            self.fire("symptom", ev, (c,), False, root_cause=root)
            self._suppress(ev)
            return
        self._incident("open", c, ev)
        self.fire("root", ev, (c,), False)
        # Descendants that went down first were roots until now: fold them into this incident.
        since = t - self.adopt_within
        for (other,), d in self.down.items():
            if other == c or self.root_of(other) != c:
                continue
            if d.root is None:
                if d.event.time < since:
                    continue  # down long before: an outage of its own, not this one's symptom
                d.root = c
                self._mark(d.event, other, c)
                self._incident("update", c, d.event)
                self._incident("resolve", other, d.event, f"symptom of {c}")
            else:
                d.root = c
        if self.suppress:
            self._adopt_recent(c, since)

    def _up(self, c: str, ev: Event, t: float) -> None:
        d = self.down.pop((c,))
        if d is None:
            return
        if d.root is not None:
            ev.attributes["topology"] = "symptom"
            ev.attributes["root_cause"] = d.root
            self._incident("update", d.root, ev)
            return
        ev.attributes["topology"] = "root"
        self._incident("resolve", c, ev)
        self.fire("clear", ev, (c,), False)
        if self.settle > 0:
            self.settling[c] = t + self.settle
            self._arm(t + self.settle)
            return
        self._release(c)

    def on_timer(self, now: float) -> None:
        due = [c for c, until in self.settling.items() if until <= now]
        for c in due:
            del self.settling[c]
            self._release(c)
        self.rearm()

    def rearm(self) -> None:
        if self.settling:
            self._arm(min(self.settling.values()))

    def _release(self, c: str) -> None:
        """`c` is up and settled: what is still down behind it gets another root or becomes one."""
        # Upstream symptoms first (fewer ancestors), so a promoted CI can become its descendants' root.
        affected = sorted(
            [(k[0], od) for k, od in self.down.items() if od.root == c],
            key=lambda item: len(self.topology.ancestors(item[0])),
        )
        for other, od in affected:
            new_root = self.root_of(other)
            if new_root is not None:
                od.root = new_root
                self._mark(od.event, other, new_root)
                self._incident("update", new_root, od.event)
            else:
                od.root = None
                self._mark(od.event, other, None)
                self._incident("open", other, od.event)
                self.fire("root", od.event, (other,), False, promoted_from=c)
        # Opens held for it go out now; the gate holds again those still behind another root.
        for req in self.held.pop(c, {}).values():
            self.sink.responses.append(req)

    # -- the gate on other rules' incidents ----------------------------------------------------------
    def gate(self, responses: list[Response], start: int) -> None:
        """Rewrite the incident requests other rules asked for since `start` (see the module doc)."""
        if not self.suppress or not self.incidents:
            return
        name = self.name
        for i in range(start, len(responses)):
            r = responses[i]
            if not isinstance(r, IncidentRequest) or r.rule == name:
                continue
            if r.action == "resolve":
                for held in self.held.values():
                    if held.pop(r.key, None) is not None:
                        break
                continue
            if r.action == "update":  # of a held incident: it was never opened, the root has it
                for holder, held in self.held.items():
                    if r.key in held:
                        responses[i] = self._request(
                            "update", holder, r.event, f"symptom: {r.key} held by {name}"
                        )
                        break
                continue
            ev = r.event
            c = self.ci(ev)
            root = self.symptom_root(c, ev.resource) if (self.down or self.settling) else None
            if root is None:
                self._remember(ev.time, c, r)
                continue
            self._hold(root, r)
            self._mark(ev, c, root)
            responses[i] = self._request("update", root, ev, f"symptom: {r.key} held by {name}")
            # As a hook, so that `rules explain` shows the hold (and on_symptom runs for it too).
            self.fire("symptom", ev, (c,), ev.source == "correlator", root_cause=root, held=r.key)

    def _hold(self, root: str, r: IncidentRequest) -> None:
        held = self.held.setdefault(root, {})
        held.setdefault(r.key, r)  # the first open keeps its event: the incident starts there

    def _remember(self, t: float, c: str, r: IncidentRequest) -> None:
        recent = self.recent
        recent.append((t, c, r))
        horizon = t - self.adopt_within
        while recent and (recent[0][0] < horizon or len(recent) > self.max_keys):
            recent.popleft()

    def _adopt_recent(self, c: str, since: float) -> None:
        """A root arrived after its children: incidents opened for them since `since` become its."""
        keep: deque[tuple[float, str, IncidentRequest]] = deque()
        for t, other, r in self.recent:
            if t >= since and self.symptom_root(other, r.event.resource) == c:
                self._hold(c, r)
                self._mark(r.event, other, c)
                self._incident("update", c, r.event)
                self.sink.responses.append(
                    IncidentRequest("resolve", r.key, r.event, self.name, description=f"symptom of {c}")
                )
                self.fire("symptom", r.event, (other,), False, root_cause=c, adopted=r.key)
            else:
                keep.append((t, other, r))
        self.recent = keep

    # -- helpers ----------------------------------------------------------------------------------
    def _suppress(self, ev: Event) -> None:
        if self.suppress:
            mark_suppressed(ev, self.name, self.sink, self._suppressed)

    def _mark(self, ev: Event, c: str, root: str | None) -> None:
        attrs = ev.attributes
        if root is None:
            attrs["topology"] = "root"
            attrs.pop("root_cause", None)
            attrs["impacted_services"] = self.topology.impacted_services(c)
        else:
            attrs["topology"] = "symptom"
            attrs["root_cause"] = root

    def _incident(self, action: Any, c: str, ev: Event, description: str = "") -> None:
        if self.incidents:
            self.sink.responses.append(self._request(action, c, ev, description))

    def _request(self, action: Any, c: str, ev: Event, description: str = "") -> IncidentRequest:
        title = self.title(ev) if self.title else f"{c} down"
        return IncidentRequest(action, f"{self.name}:{c}", ev, self.name, title, description)

    # -- state ------------------------------------------------------------------------------------
    def describe(self, key: Key, now: float) -> str:
        c = key[0]
        d = self.down.get(key)
        held = len(self.held.get(c, ()))
        holding = f", holding {held} incident(s) of other rules" if held else ""
        if d is None:
            until = self.settling.get(c)
            if until is not None:
                return f"topology: {c} is up, settling for {until - now:g}s more{holding}"
            root = self.root_of(c)
            if root is not None:
                return f"topology: {c} is behind {root}: its events are symptoms"
            return f"topology: {c} is not down"
        if d.root is None:
            return f"topology: {c} is down, a root cause{holding}"
        return f"topology: {c} is down, a symptom of {d.root}"

    def keys(self) -> int:
        return len(self.down) + len(self.settling)

    def snapshot(self) -> Any:
        return {
            "down": [(k[0], d.root, d.event.to_dict()) for k, d in self.down.dump()],
            "settling": list(self.settling.items()),
            "held": [(root, [_request_doc(r) for r in reqs.values()]) for root, reqs in self.held.items()],
            "recent": [(t, c, _request_doc(r)) for t, c, r in self.recent],
        }

    def restore(self, data: Any) -> None:
        if isinstance(data, list):  # saved before settling and holding existed: the down table only
            data = {"down": data}
        for c, root, ev in data.get("down", ()):
            self.down.put((c,), _Down(Event.from_wire(ev), root))
        self.settling = {c: until for c, until in data.get("settling", ())}
        for root, reqs in data.get("held", ()):
            self.held[root] = {r.key: r for r in map(_request_of, reqs)}
        self.recent = deque((t, c, _request_of(r)) for t, c, r in data.get("recent", ()))


_REQUEST_FIELDS = (
    "action",
    "key",
    "rule",
    "title",
    "description",
    "impact",
    "urgency",
    "assignment_group",
    "major",
)


def _request_doc(r: IncidentRequest) -> dict[str, Any]:
    doc = {f: getattr(r, f) for f in _REQUEST_FIELDS}
    doc["event"] = r.event.to_dict()
    return doc


def _request_of(doc: dict[str, Any]) -> IncidentRequest:
    fields = {f: doc[f] for f in _REQUEST_FIELDS}
    return IncidentRequest(event=Event.from_wire(doc["event"]), **fields)
