"""Which change window covers an event: an index by CI and service of approved/in-progress changes.

Rebuilt whenever a change is saved (rare); the pipeline asks it once per event with two dict reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from correlator.changes.model import COVERING, Change
from correlator.changes.topology import DependencyMap
from correlator.event import Event


@dataclass(frozen=True, slots=True)
class Hit:
    change: Change
    direct: bool  # on the change's own CI or service; False: on a CI depending on one


class Scope:
    def __init__(self, changes: Iterable[Change] = (), deps: DependencyMap | None = None) -> None:
        self._by_ci: dict[str, list[Hit]] = {}
        self._by_service: dict[str, list[Hit]] = {}
        deps = deps or DependencyMap()
        for c in changes:
            if c.state not in COVERING:
                continue
            for ci in c.cis:
                self._by_ci.setdefault(ci, []).append(Hit(c, True))
            for svc in c.services:
                self._by_service.setdefault(svc, []).append(Hit(c, True))
            for ci in {d for own in c.cis for d in deps.dependents_of(own)} - set(c.cis):
                self._by_ci.setdefault(ci, []).append(Hit(c, False))
        for hits in (*self._by_ci.values(), *self._by_service.values()):
            hits.sort(key=lambda h: (not h.direct, h.change.id))  # direct first, then oldest change

    def __bool__(self) -> bool:
        return bool(self._by_ci or self._by_service)

    def lookup(self, ev: Event) -> Hit | None:
        """The covering change whose window holds the event's time; direct hits win."""
        best: Hit | None = None
        hits = self._by_ci.get(ev.host)
        if hits:
            best = _first(hits, ev.time)
        if best is None or not best.direct:
            service = ev.attributes.get("service")
            if isinstance(service, str):
                hits = self._by_service.get(service)
                if hits:
                    best = _first(hits, ev.time) or best
        return best


def _first(hits: list[Hit], t: float) -> Hit | None:
    for h in hits:
        if h.change.start <= t < h.change.end:
            return h
    return None
