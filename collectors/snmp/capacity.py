"""Poll results -> capacity ratios, state changes and threshold crossings (pure; no I/O).

The poller feeds one `Sample` per target and cycle; `TargetState.update` returns the events to emit
and the gauge values, and the poller keeps the new state only once the events are durable.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from collectors.snmp.oids import IF_OPER_STATUS
from correlator.event import Event, Severity, new_id

POLL_SOURCE = "snmp:poll"  # traps and informs are source "snmp"
COUNTER64 = 1 << 64
HYSTERESIS = 0.05  # a high-utilisation alarm clears only this far below its threshold


@dataclass
class Interface:
    descr: str
    admin: int | None = None  # ifAdminStatus: 1 up, 2 down, 3 testing
    oper: int | None = None  # ifOperStatus: 1 up, 2 down, ...
    hc_in: int | None = None
    hc_out: int | None = None
    high_speed: int | None = None  # Mbit/s


@dataclass
class Sample:
    """One poll of a target: None uptime means it did not answer."""

    uptime: int | None  # sysUpTime in centiseconds
    interfaces: dict[int, Interface] = field(default_factory=dict)
    cpu_loads: list[int] = field(default_factory=list)  # hrProcessorLoad, percent per processor
    storage: dict[str, tuple[int, int]] = field(default_factory=dict)  # descr -> (used, size)


@dataclass
class TargetState:
    ci: str
    reachable: bool | None = None
    uptime: int | None = None
    counters: dict[int, tuple[int, int]] = field(default_factory=dict)  # ifIndex -> (in, out)
    down: set[str] = field(default_factory=set)  # interfaces alarmed down
    high: set[tuple[str, str]] = field(default_factory=set)  # (kind, resource) alarmed high

    def update(
        self, s: Sample, now: float, thresholds: dict[str, float]
    ) -> tuple[TargetState, list[Event], dict[tuple[str, str], float]]:
        """(new state, events, {(resource, kind): ratio}) for a sample; self is left unchanged."""
        new = copy.deepcopy(self)
        events: list[Event] = []
        ev = _EventMaker(self.ci, now)
        if s.uptime is None:
            if self.reachable is not False:
                events.append(ev("snmp.unreachable", Severity.MAJOR, "", "no answer to sysUpTime"))
            new.reachable = False
            return new, events, {}
        if self.reachable is False:
            events.append(ev("snmp.unreachable", Severity.CLEAR, "", "answering again"))
        new.reachable = True
        rebooted = self.uptime is not None and s.uptime < self.uptime
        if rebooted:
            events.append(
                ev("snmp.rebooted", Severity.WARNING, "", f"sysUpTime went from {self.uptime} to {s.uptime}")
            )
            new.counters = {}  # counters restarted with the agent: no rate across the restart
        dt = (s.uptime - self.uptime) / 100.0 if self.uptime is not None and not rebooted else 0.0
        new.uptime = s.uptime
        ratios: dict[tuple[str, str], float] = {}
        for index, itf in s.interfaces.items():
            self._interface(new, index, itf, dt, ratios, events, ev)
        new.counters = {i: c for i, c in new.counters.items() if i in s.interfaces}
        if s.cpu_loads:
            ratios[("cpu", "cpu")] = sum(s.cpu_loads) / len(s.cpu_loads) / 100.0
        for descr, (used, size) in s.storage.items():
            if size > 0:
                ratios[(descr, "storage")] = used / size
        for (resource, kind), ratio in ratios.items():
            limit = thresholds.get(kind.partition("_")[0])
            if limit is None:
                continue
            key = (kind, resource)
            if key not in new.high and ratio >= limit:
                new.high.add(key)
                events.append(
                    ev(
                        "snmp.capacity.high",
                        Severity.WARNING,
                        resource,
                        f"{kind} at {ratio:.0%}",
                        kind,
                        ratio,
                    )
                )
            elif key in new.high and ratio < limit - HYSTERESIS:
                new.high.discard(key)
                events.append(
                    ev("snmp.capacity.high", Severity.CLEAR, resource, f"{kind} at {ratio:.0%}", kind, ratio)
                )
        return new, events, ratios

    @staticmethod
    def _interface(
        new: TargetState,
        index: int,
        itf: Interface,
        dt: float,
        ratios: dict[tuple[str, str], float],
        events: list[Event],
        ev: _EventMaker,
    ) -> None:
        name = itf.descr or f"ifIndex.{index}"
        is_down = itf.admin == 1 and itf.oper is not None and itf.oper != 1
        if is_down and name not in new.down:
            new.down.add(name)
            e = ev("snmp.interface.down", Severity.MAJOR, name, f"ifOperStatus {_oper(itf.oper)}")
            e.attributes.update(ifOperStatus=_oper(itf.oper), ifOperStatus_value=itf.oper)
            events.append(e)
        elif not is_down and name in new.down:
            new.down.discard(name)
            e = ev("snmp.interface.down", Severity.CLEAR, name, "ifOperStatus up")
            e.attributes.update(ifOperStatus="up", ifOperStatus_value=1)
            events.append(e)
        if itf.hc_in is None or itf.hc_out is None:
            return
        old = new.counters.get(index)
        new.counters[index] = (itf.hc_in, itf.hc_out)
        if old is None or dt <= 0 or not itf.high_speed:
            return
        bits_per_s = itf.high_speed * 1_000_000
        for kind, now_v, old_v in (
            ("interface_in", itf.hc_in, old[0]),
            ("interface_out", itf.hc_out, old[1]),
        ):
            delta = now_v - old_v if now_v >= old_v else now_v + COUNTER64 - old_v  # a wrap, not a restart
            ratios[(name, kind)] = min(delta * 8 / dt / bits_per_s, 1.0)


def _oper(value: int | None) -> str:
    """ifOperStatus as its IF-MIB label (as the trap mapping names it), the number if unknown."""
    return IF_OPER_STATUS.get(value, str(value)) if value is not None else "unknown"


class _EventMaker:
    def __init__(self, ci: str, now: float) -> None:
        self.ci, self.now = ci, now

    def __call__(
        self,
        type_: str,
        severity: Severity,
        resource: str,
        message: str,
        kind: str | None = None,
        ratio: float | None = None,
    ) -> Event:
        attrs: dict[str, object] = {}
        if kind is not None:
            attrs["kind"] = kind
            attrs["ratio"] = round(ratio or 0.0, 4)
        return Event(
            new_id(),
            self.now,
            self.now,
            POLL_SOURCE,
            self.ci,
            type_,
            severity,
            resource,
            f"{self.ci}: {message}",
            attrs,
        )
