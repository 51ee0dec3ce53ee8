"""group: matching events with the same `group_by` key within `group_wait` merge into one event.

As Alertmanager groups alerts: the first member opens a group; `group_wait` seconds later one
`<rule>.group` event listing the members is emitted (hook `flush`). Later members join the open
group (hook `join`, each member is annotated with `group`) until it has been idle for `close_after`.
Every member carries `attributes.group` = the id of the group event, so the UI can fold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from correlator.config import duration_text
from correlator.correlation.core import (
    Engine,
    Hooks,
    Key,
    KeyFn,
    KeyTable,
    Match,
    derived_id,
    generated_event,
    key_of,
)
from correlator.event import Event, Severity, clock_time


@dataclass(slots=True)  # slots: small per key; dataclass: orjson writes snapshots of it natively
class _Group:
    id: str
    first: float
    deadline: float
    host: str
    resource: str
    severity: str  # highest member severity
    last: float
    count: int = 0
    members: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def _deadline(g: _Group) -> float:
    return g.deadline


class Group(Engine):
    kind = "group"
    hook_names = ("flush", "join")

    def __init__(
        self,
        name: str,
        match: Match,
        key: KeyFn,
        group_wait: float,
        hooks: Hooks | None = None,
        max_keys: int = 100_000,
        close_after: float = 3600.0,
        max_members: int = 100,
        group_type: str | None = None,
    ) -> None:
        super().__init__(name, match, key, hooks)
        if group_wait <= 0:
            raise ValueError(f"rule {name}: group needs group_wait > 0")
        self.group_wait = group_wait
        self.close_after = close_after
        self.max_members = max_members
        self.group_type = group_type or f"{name}.group"
        self.pending: KeyTable[_Group] = KeyTable(name, max_keys)  # not flushed yet, creation order
        self.open: KeyTable[_Group] = KeyTable(name, max_keys)  # flushed, least recently joined first

    def on_event(self, ev: Event, t: float) -> None:
        k = self.key(ev)
        joined = False
        g = self.pending.get(k)
        if g is None:
            g = self.open.get(k)
            if g is not None:
                self.open.touch(k)
                joined = True
            else:
                resource = "/".join(str(p) for p in k)  # one fingerprint per group key
                gid = derived_id(self.name, k, ev.id)
                g = _Group(gid, t, t + self.group_wait, ev.host, resource, ev.severity.value, t)
                self.pending.put(k, g)
                self._arm(g.deadline)
        if t > g.last:
            g.last = t
        g.count += 1
        if len(g.members) < self.max_members:
            g.members.append(ev.id)
        if ev.host not in g.hosts and len(g.hosts) < self.max_members:
            g.hosts.append(ev.host)
        if ev.severity.rank > Severity(g.severity).rank:
            g.severity = ev.severity.value
        ev.attributes["group"] = g.id
        if joined:
            self.fire("join", ev, k, False, group=g.id, count=g.count)

    def on_timer(self, now: float) -> None:
        for k, g in self.pending.pop_due(_deadline, now):
            g.last = now
            self.open.put(k, g)
            info = {
                "key": list(k),
                "count": g.count,
                "members": list(g.members),
                "hosts": list(g.hosts),
                "first": g.first,
            }
            text = "/".join(str(p) for p in k)
            ev = generated_event(
                self.name,
                "flush",
                self.group_type,
                g.deadline,
                g.host,
                g.resource,
                Severity(g.severity),
                f"{g.count} events grouped by {text or self.name} from {len(g.hosts)} hosts",
                info,
                (g.id,),
            )
            ev.id = g.id
            self.generate("flush", ev, k, True, group=g.id, count=g.count)
        self.rearm()

    def rearm(self) -> None:
        self._arm_first(self.pending, _deadline)

    def describe(self, key: Key, now: float) -> str:
        g = self.pending.get(key)
        if g is not None:
            return (
                f"group: {g.count} event(s) from {len(g.hosts)} host(s), "
                f"the group event at {clock_time(g.deadline)}"
            )
        g = self.open.get(key)
        if g is not None:
            idle = duration_text(self.close_after)
            return f"group: sent, {g.count} event(s); later ones join until it is idle for {idle}"
        return "group: no group"

    def keys(self) -> int:
        return len(self.pending) + len(self.open)

    def expire(self, now: float) -> int:
        n = 0
        while (item := self.open.oldest()) is not None and item[1].last + self.close_after <= now:
            self.open.pop_oldest()
            n += 1
        return n

    def snapshot(self) -> Any:
        return {"pending": self.pending.dump(), "open": self.open.dump()}

    def restore(self, data: Any) -> None:
        for k, g in data["pending"]:
            self.pending.put(key_of(k), _Group(**g))
        for k, g in data["open"]:
            self.open.put(key_of(k), _Group(**g))
        self.rearm()
