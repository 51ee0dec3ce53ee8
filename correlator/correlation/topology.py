"""topology / root cause: a down event on a CI whose upstream CI is down is a symptom, not a new incident.

A `down` event on a CI with no upstream CI down makes it a root cause: it is annotated
`topology: root` with its impacted services, and incident `<rule>:<ci>` is opened (hook `root`).
A down event on a CI behind a down CI is annotated `topology: symptom`, `root_cause: <ci>` and
attached to the root's incident (update; hook `symptom`). A root that goes down after its
descendants makes them symptoms (their incidents are resolved into the root's). When a root's `up`
event arrives its incident is resolved (hook `clear`) and its symptoms are re-evaluated: attached
to another down ancestor, or promoted to roots with their own incident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.correlation.actions import Template
from correlator.correlation.core import Engine, Hooks, Key, KeyTable, Match
from correlator.correlation.topology_file import Topology
from correlator.event import Event
from correlator.responses import IncidentRequest


class _Down:
    __slots__ = ("event", "root")

    def __init__(self, event: Event, root: str | None) -> None:
        self.event = event
        self.root = root  # None: this CI is itself a root cause


def host_ci(ev: Event) -> str:
    return ev.host


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
    ) -> None:
        super().__init__(name, lambda e: down(e) or up(e), lambda e: (ci(e),), hooks)
        self.match_down = down
        self.match_up = up
        self.topology = topology
        self.ci = ci
        self.title = title
        self.incidents = incidents
        self.down: KeyTable[_Down] = KeyTable(name, max_keys)

    def on_event(self, ev: Event, t: float) -> None:
        c = self.ci(ev)
        if self.match_up(ev):
            self._up(c, ev)
        else:
            self._down(c, ev)

    def root_of(self, c: str) -> str | None:
        """The down ancestor with no down ancestor of its own, nearest first."""
        for a in self.topology.ancestors(c):
            d = self.down.get((a,))
            if d is not None and d.root is None:
                return a
        return None

    def _down(self, c: str, ev: Event) -> None:
        known = self.down.get((c,))
        root = self.root_of(c)
        if known is not None:
            known.event = ev
            self._mark(ev, c, root)
            self._incident("update", root or c, ev)
            return
        self.down.put((c,), _Down(ev, root))
        self._mark(ev, c, root)
        if root is not None:
            self._incident("update", root, ev)
            self.fire("symptom", ev, (c,), False, root_cause=root)
            return
        self._incident("open", c, ev)
        self.fire("root", ev, (c,), False)
        # Descendants that went down first were roots until now: fold them into this incident.
        for (other,), d in self.down.items():
            if other != c and d.root is None and self.root_of(other) == c:
                d.root = c
                self._mark(d.event, other, c)
                self._incident("update", c, d.event)
                self._incident("resolve", other, d.event, f"symptom of {c}")
            elif d.root is not None and d.root != c and self.root_of(other) == c:
                d.root = c

    def _up(self, c: str, ev: Event) -> None:
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
        if not self.incidents:
            return
        title = self.title(ev) if self.title else f"{c} down"
        self.sink.responses.append(
            IncidentRequest(action, f"{self.name}:{c}", ev, self.name, title, description)
        )

    def describe(self, key: Key, now: float) -> str:
        d = self.down.get(key)
        if d is None:
            return f"topology: {key[0]} is not down"
        if d.root is None:
            return f"topology: {key[0]} is down, a root cause"
        return f"topology: {key[0]} is down, a symptom of {d.root}"

    def keys(self) -> int:
        return len(self.down)

    def snapshot(self) -> Any:
        return [(k[0], d.root, d.event.to_dict()) for k, d in self.down.dump()]

    def restore(self, data: Any) -> None:
        for c, root, ev in data:
            self.down.put((c,), _Down(Event.from_wire(ev), root))
