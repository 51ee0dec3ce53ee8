"""Up/down state of CIs, resources and services, driven by events on the correlation clock.

The availability stage feeds events in; every change is also queued in `ops` for the stage to
persist (availability/db.py) before the batch is acknowledged, so a restart resumes the same state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from correlator.availability.history import Figures, ServiceHistory, merge
from correlator.availability.model import Element, Service, ServiceModel
from correlator.availability.settings import AvailabilitySettings
from correlator.event import Event, Severity

Op = tuple[str, tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    up: bool
    target: float
    outages: int
    outage_seconds: float
    windows: dict[str, Figures]


class AvailabilityState:
    def __init__(self, settings: AvailabilitySettings, model: ServiceModel) -> None:
        self.settings = settings
        self.model = model
        self.tracked: set[Element] = model.elements()
        self.by_ci: dict[str, list[Service]] = {}
        for s in model.services.values():
            for ci in dict.fromkeys(ci for ci, _ in s.root.elements()):
                self.by_ci.setdefault(ci, []).append(s)
        self.conditions: dict[Element, dict[str, float]] = {}  # element -> {down event type: since}
        self.down: dict[str, bool] = {}
        self.last_change: dict[str, float] = {}
        self.history: dict[str, ServiceHistory] = {}
        self.ops: list[Op] = []
        self.longest = max(w for _, w in settings.windows)

    # -- start-up -------------------------------------------------------------------------------
    def restore(
        self,
        conditions: Iterable[tuple[str, str, str, float]],
        services: Iterable[tuple[str, float]],
        outages: Iterable[tuple[str, float, float | None]],
        now: float,
    ) -> None:
        """Rebuild from the persisted rows (outages ordered by start), then settle against `now`."""
        for ci, res, typ, t in conditions:
            if (ci, res) in self.tracked:
                self.conditions.setdefault((ci, res), {})[typ] = t
            else:  # the services file no longer uses this element
                self.ops.append(("cond_del", (ci, res, typ)))
        self._track(self.model.services, services, outages, now)
        for s in self.model.services.values():
            self._settle(s, now)

    def _track(
        self,
        names: Iterable[str],
        services: Iterable[tuple[str, float]],
        outages: Iterable[tuple[str, float, float | None]],
        now: float,
    ) -> None:
        """Begin the history of services `names` from their persisted rows (tracked from `now` if none)."""
        names = set(names)
        since = {name: t for name, t in services if name in names}
        for name in names:
            if name not in since:
                since[name] = now
                self.ops.append(("service", (name, now)))
            self.history[name] = ServiceHistory(since[name], self._maintenance(name))
        for name, start, end in outages:
            h = self.history.get(name) if name in names else None
            if h is None:
                continue
            if end is None:
                h.start(start)
            else:
                h.load_closed(start, end, keep=end >= now - self.longest)
            self.last_change[name] = max(self.last_change.get(name, 0.0), end or start)
        for name in names:
            self.down[name] = self.history[name].open_since is not None

    def swap(
        self,
        model: ServiceModel,
        services: Iterable[tuple[str, float]],
        outages: Iterable[tuple[str, float, float | None]],
        now: float,
    ) -> None:
        """Serve a reloaded services file. Kept services keep their state and history; removed ones
        are forgotten here (their persisted rows stay, for a revert); added ones start from their
        persisted rows, if any, and from the conditions already known of their members. Then every
        service is settled against its (maybe changed) members at `now`."""
        fresh = AvailabilityState(self.settings, model)
        for element, conds in self.conditions.items():
            if element in fresh.tracked:
                fresh.conditions[element] = conds
            else:
                self.ops.extend(("cond_del", (*element, typ)) for typ in conds)
        for name in model.services.keys() & self.model.services.keys():
            fresh.history[name] = self.history[name]
            fresh.down[name] = self.down.get(name, False)
            if name in self.last_change:
                fresh.last_change[name] = self.last_change[name]
        fresh.ops = self.ops
        fresh._track(model.services.keys() - self.model.services.keys(), services, outages, now)
        self.model, self.tracked, self.by_ci = fresh.model, fresh.tracked, fresh.by_ci
        self.conditions, self.down = fresh.conditions, fresh.down
        self.last_change, self.history = fresh.last_change, fresh.history
        for s in model.services.values():
            self._settle(s, now)

    def _maintenance(self, service: str) -> list[tuple[float, float]]:
        return merge(
            [
                (m.start, m.end)
                for m in self.settings.maintenance
                if m.services is None or service in m.services
            ]
        )

    # -- events ---------------------------------------------------------------------------------
    def observe(self, ev: Event, now: float) -> bool:
        """Apply one event; True when some element's state changed."""
        element = (ev.host, ev.resource)
        if element not in self.tracked:
            return False
        cfg = self.settings
        # Never after the daemon received it, nor after the clock: a device clock running ahead
        # must not put an outage in the future.
        at = min(ev.time, max(ev.received, now))
        conds = self.conditions.get(element)
        if ev.type in cfg.down_types:
            if ev.severity in cfg.down_severities:
                if conds is not None and ev.type in conds:
                    return False
                self.conditions.setdefault(element, {})[ev.type] = at
                self.ops.append(("cond_add", (*element, ev.type, at)))
            elif ev.severity is Severity.CLEAR and conds and ev.type in conds:
                del conds[ev.type]
                self.ops.append(("cond_del", (*element, ev.type)))
            else:
                return False
        elif ev.type in cfg.up_types and conds:
            conds.clear()
            self.ops.append(("cond_clear", element))
        else:
            return False
        for s in self.by_ci.get(ev.host, ()):
            self._settle(s, at)
        return True

    def element_down(self, element: Element) -> bool:
        ci, res = element
        if self.conditions.get((ci, "")):
            return True
        return bool(res) and bool(self.conditions.get(element))

    def ci_up(self, ci: str) -> bool:
        return not self.conditions.get((ci, ""))

    def _settle(self, s: Service, at: float) -> None:
        down = s.is_down(self.element_down)
        if down == self.down.get(s.name, False):
            return
        # Transitions of one service never go back in time, whatever order the events came in.
        at = max(at, self.last_change.get(s.name, at))
        self.last_change[s.name] = at
        self.down[s.name] = down
        h = self.history[s.name]
        if down:
            h.start(at)
            self.ops.append(("outage_start", (s.name, at)))
        else:
            h.end(at)
            self.ops.append(("outage_end", (s.name, at)))

    # -- figures --------------------------------------------------------------------------------
    def figures(self, now: float) -> dict[str, ServiceFigures]:
        out: dict[str, ServiceFigures] = {}
        for s in self.model.services.values():
            h = self.history[s.name]
            h.prune(now - self.longest)
            n, secs = h.totals(now)
            target = s.target if s.target is not None else self.settings.default_target
            windows = {label: h.window(now, seconds) for label, seconds in self.settings.windows}
            out[s.name] = ServiceFigures(not self.down.get(s.name, False), target, n, secs, windows)
        return out


def breached(f: Figures, target: float) -> float:
    """1.0 when the window's availability is below target, 0.0 otherwise (NaN when not observed)."""
    if math.isnan(f.ratio):
        return math.nan
    return 1.0 if f.ratio < target else 0.0
