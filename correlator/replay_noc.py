"""Replay through the whole pipeline, and what a NOC would have seen: incidents, problems, changes.

Maintenance, correlation, incidents, change links, problems and availability run as the daemon
assembles them (correlator/services.py), on the event-time clock, against SQLite stores in a
throwaway directory (or one the operator keeps with `--data`). Nothing is sent: incident
notifications are listed, never handed to the outbox. The report is built from what the incident
service did with each request, so it costs no store reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.clock import Clock
from correlator.config import Config
from correlator.event import Event, iso
from correlator.incidents.model import Incident
from correlator.incidents.settings import NotifyTarget
from correlator.notify.incidents import Notifier
from correlator.replay import ReplaySummary
from correlator.responses import IncidentRequest
from correlator.rules.reload import RulesHolder
from correlator.services import Services, assemble, close_services, open_services

EVENTS_SHOWN = 100  # per incident in --json; the text shows fewer
TEXT_EVENTS = 5
_INCIDENT_KEYS = (
    "id", "title", "status", "priority", "severity", "major", "host", "service", "rule", "key",
    "assignment_group", "assignee",
    "opened_at", "resolved_at", "resolution_code", "reopened_at", "reopen_count", "closed_at",
    "escalation_level", "event_count", "first_occurrence", "last_occurrence", "change_id",
    "problem_id", "known_error_id",
)  # fmt: skip
STORES = ("incidents.db", "records.db")
SCRATCH_MIN = 1 << 30  # bytes free in /dev/shm to put the throwaway stores there


@dataclass(frozen=True, slots=True)
class Notice:
    at: str
    kind: str
    target: str
    incident: str


class ListedNotifier(Notifier):
    """Incident notifications as a list: replay shows what would have been sent and sends nothing.
    The outbox the base class holds is never started, so nothing is written or delivered."""

    def __init__(self, targets: dict[str, NotifyTarget]) -> None:
        super().__init__(targets, None)
        self.notices: list[Notice] = []

    async def start(self) -> None:
        return None

    async def stop(self, grace: float = 2.0) -> None:
        return None

    def submit(self, kind: str, doc: dict[str, Any], extra_targets: tuple[str, ...] = ()) -> None:
        for name, target in self._targets.items():
            if target.wants(kind, doc) or name in extra_targets:
                self.notices.append(Notice(str(doc.get("updated_at")), kind, name, str(doc.get("id"))))


@dataclass
class NocReplay:
    services: Services
    notifier: ListedNotifier
    clock: Clock
    data_dir: Path
    kept: bool  # --data: the stores stay for the API and CLI to browse
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    outcomes: list[tuple[IncidentRequest, str, Incident | None]] = field(default_factory=list)

    async def close(self) -> None:
        await close_services(self.services)
        if self._tmp is not None:
            self._tmp.cleanup()


class DataDirInUse(Exception):
    pass


async def start(
    config: Config,
    rules: RulesHolder,
    first_time: float,
    data_dir: Path | None = None,
    changes: Sequence[dict[str, Any]] = (),
) -> NocReplay:
    """Assemble and open the services on a clock at `first_time`; create the `changes` (fields as
    the API takes them) as approved changes. `data_dir` must not hold stores already: replay never
    mixes its incidents into a live daemon's. Raises DataDirInUse, ConfigError."""
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="correlator-replay-", dir=_scratch())
        where = Path(tmp.name)
    else:
        where = data_dir
        taken = [name for name in STORES if (where / name).exists()]
        if taken:
            raise DataDirInUse(f"--data {where}: already holds {', '.join(taken)}; give a new directory")
        where.mkdir(parents=True, exist_ok=True)
    clock = Clock(first_time)
    notifier: ListedNotifier | None = None

    def listed(targets: dict[str, NotifyTarget]) -> Notifier:
        nonlocal notifier
        notifier = ListedNotifier(targets)
        return notifier

    try:
        services = assemble(config, rules, clock, where, listed, configured_stores=False)
        assert notifier is not None
        await open_services(services)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    noc = NocReplay(services, notifier, clock, where, data_dir is not None, tmp)
    services.incidents.outcomes = noc.outcomes
    try:
        for fields in changes:
            c = await services.changes.create("replay", dict(fields))
            await services.changes.act(c.id, "approve", "replay", "from the changes file")
    except BaseException:
        await noc.close()
        raise
    return noc


def _scratch() -> str | None:
    """Where the throwaway stores go: memory-backed /dev/shm when it has room (each incident batch
    is a committed transaction, and fsyncs to a disk made replay several times slower), else TMPDIR."""
    shm = Path("/dev/shm")  # a private TemporaryDirectory inside it
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= SCRATCH_MIN:
            return str(shm)
    except OSError:
        pass
    return None


async def finish(noc: NocReplay) -> None:
    """After the last event (and `--wait`): deadlines due by the clock's time run, as live."""
    now = noc.clock.now()
    await noc.services.changes.run_due(now)
    await noc.services.incidents.run_due(now)


async def report(noc: NocReplay, summary: ReplaySummary) -> dict[str, Any]:
    """The NOC's view as one JSON-ready document (docs/rules.md "Replay")."""
    await noc.services.incidents.settled()  # the last batches' notices are listed once stored
    incidents = _incidents(noc.outcomes)
    changes = await noc.services.changes.query((), 100_000, None)
    problems = await noc.services.problems.query_problems((), 100_000, None)
    opened = len(incidents)
    suppressed = sum(summary.suppressed.values())
    return {
        "reduction": {
            "events_in": summary.events_in,
            "incidents": opened,
            "ratio": round(summary.events_in / opened, 1) if opened else None,
        },
        "incidents": incidents,
        "problems": [p.to_api() for p in sorted(problems, key=lambda p: p.id)],
        "changes": [
            {**c.to_api(), "suppressed": summary.suppressed.get(c.human_id, 0)}
            for c in sorted(changes, key=lambda c: c.id)
        ],
        "maintenance": {"suppressed": suppressed, "by_change": dict(sorted(summary.suppressed.items()))},
        "notifications": [
            {"at": n.at, "kind": n.kind, "target": n.target, "incident": n.incident}
            for n in noc.notifier.notices
        ],
        "rule_notifications": [
            {"at": iso(r.event.time), "target": r.target, "rule": r.rule, "event": r.event.id}
            for r in summary.notify
        ],
        "data_dir": str(noc.data_dir) if noc.kept else None,
    }


def _incidents(outcomes: list[tuple[IncidentRequest, str, Incident | None]]) -> list[dict[str, Any]]:
    """Each incident a request reached, with the events attached to it (opened, updated, resolved)."""
    seen: dict[int, tuple[Incident, list[tuple[Event, str]]]] = {}
    for req, outcome, inc in outcomes:
        if inc is None or outcome == "ignored":
            continue
        seen.setdefault(id(inc), (inc, []))[1].append((req.event, outcome))
    rows = []
    for inc, events in sorted(seen.values(), key=lambda pair: pair[0].id):
        api = inc.to_api()
        row = {k: api.get(k) for k in _INCIDENT_KEYS}
        row["events_attached"] = len(events)
        row["events"] = [_event(ev, outcome) for ev, outcome in events[:EVENTS_SHOWN]]
        rows.append(row)
    return rows


def _event(ev: Event, outcome: str) -> dict[str, Any]:
    return {
        "time": iso(ev.time),
        "outcome": outcome,
        "host": ev.host,
        "type": ev.type,
        "resource": ev.resource,
        "severity": ev.severity.value,
        "id": ev.id,
    }


def report_lines(doc: dict[str, Any]) -> list[str]:
    """The report as a person reads it: one block per incident, then problems, changes, notices."""
    red = doc["reduction"]
    incidents = doc["incidents"]
    resolved = sum(1 for i in incidents if i["resolved_at"] or i["status"] in ("resolved", "closed"))
    reopened = sum(1 for i in incidents if i["reopen_count"])
    lines = [
        f"reduction: {red['events_in']} events in, {red['incidents']} incidents out"
        + (f" ({red['ratio']} events per incident)" if red["ratio"] else ""),
        "",
        f"incidents: {len(incidents)} opened, {resolved} resolved, {reopened} reopened",
    ]
    for i in incidents:
        lines.extend(_incident_lines(i))
    lines.append(f"problems: {len(doc['problems'])}")
    for p in doc["problems"]:
        lines.append(
            f"  {p['id']} {p['state']} opened {p['opened_at']}: {p['title']} (incidents "
            f"{', '.join(p['incidents'])})"
        )
    lines.append(f"changes: {len(doc['changes'])}")
    for c in doc["changes"]:
        covers = ", ".join([*c["cis"], *c["services"]])
        lines.append(
            f"  {c['id']} {c['state']} {c['start']} to {c['end']} on {covers}: {c['title']}; "
            f"{c['suppressed']} events suppressed; suspected cause of "
            f"{', '.join(c['incidents']) or 'no incident'}"
        )
    m = doc["maintenance"]
    lines.append(f"maintenance: {m['suppressed']} events suppressed")
    notices = doc["notifications"]
    by: Counter[tuple[str, str]] = Counter((n["target"], n["kind"]) for n in notices)
    lines.append(f"notifications (listed, not sent): {len(notices)}")
    lines.extend(f"  {target}: {n} {kind}" for (target, kind), n in sorted(by.items()))
    for target, n in sorted(Counter(r["target"] for r in doc["rule_notifications"]).items()):
        lines.append(f"  {target}: {n} notify (asked by level-2 rules)")
    if doc["data_dir"]:
        lines.append(f"stores kept in {doc['data_dir']} (correlator run with storage.data_dir there)")
    return lines


def _incident_lines(i: dict[str, Any]) -> list[str]:
    lines = [f"  {i['id']} {i['priority']} {i['status']}: {i['title']} (rule {i['rule']}, host {i['host']})"]
    when = [f"opened {i['opened_at']}"]
    if i["resolved_at"]:
        when.append(
            f"resolved {i['resolved_at']}" + (f" ({i['resolution_code']})" if i["resolution_code"] else "")
        )
    if i["reopen_count"]:
        when.append(f"reopened {i['reopen_count']}x, last {i['reopened_at']}")
    if i["closed_at"]:
        when.append(f"closed {i['closed_at']}")
    if i["escalation_level"]:
        when.append(f"escalation level {i['escalation_level']}")
    lines.append("      " + ", ".join(when))
    links = [f"{name} {i[key]}" for key, name in _LINKS if i.get(key)]
    if links:
        lines.append("      " + ", ".join(links))
    lines.append(f"      {i['events_attached']} events:")
    for e in i["events"][:TEXT_EVENTS]:
        res = f" {e['resource']}" if e["resource"] else ""
        lines.append(f"        {e['time']} {e['outcome']:<8} {e['host']} {e['type']}{res} {e['severity']}")
    if i["events_attached"] > TEXT_EVENTS:
        lines.append(f"        ... {i['events_attached'] - TEXT_EVENTS} more")
    return lines


_LINKS = (
    ("change_id", "suspected cause"),
    ("problem_id", "problem"),
    ("known_error_id", "known error"),
)
