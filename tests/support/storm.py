"""A generated storm with its topology, rule set and the exact incident table it must produce.

`storm(start, scale)` returns `(events, topology, rules, expected_incidents)`:

- `events`: about 5,000 events in the generic format (docs/events.md), in time order, with ids and
  ISO 8601 UTC times: a 20-minute storm from `start`, its timeline multiplied by `scale` (1.0 for
  replay on event time; 0.05 plays it in a minute against a live daemon, whose clock is wall time).
- `topology`: the topology file text; write it as `topology.yaml` beside the rules directory.
- `rules`: rule files by name (write them into the rules directory); their durations are scaled too.
- `expected_incidents`: every incident the storm must open and no other, as `Expected` rows, as the
  table stands at the end of the storm (`start + STORM_END * scale`). Heartbeats stop with the storm,
  so a run must not be driven more than `every` (2 minutes, scaled) past that end.

The maintenance window is a change made through the API (`storm_changes`), approved before the storm;
problem management runs with its defaults (3 occurrences within 7 days open a problem).

What is in it (storm seconds; see `_timeline`):

| what | where, when | the incidents it must give |
|---|---|---|
| heartbeats every 30 s | every CI, whole storm | none |
| dropped noise | `syslog.debug` everywhere, dropped by level 1 | none |
| port blips | three linkDown/linkUp 3 s apart | none |
| a real port outage | dist-3 Gi1/0/9 down 200 s .. 1000 s | `link-down:dist-3/Gi1/0/9`, resolved |
| root cause core-1 | down 300 s .. 600 s: 25 CIs behind it (uplinks down first, out of order), unreachable, app errors, missed heartbeats; early (dist-2) and late recoveries within settle | `root-cause:core-1`, resolved, its symptoms on it |
| a CI still down after settle | acc-8 answers only at 900 s | `root-cause:acc-8`, resolved |
| SNMP brute force | 60 auth failures on core-2 in 30 s | `snmp-brute-force:core-2`, open |
| flapping | acc-14 Gi0/5 every 10 s, 700 s .. 790 s | `interface-flapping:acc-14/Gi0/5`, resolved |
| missing heartbeat | srv-30 silent from 700 s | `device-heartbeat:srv-30`, open |
| maintenance | change on srv-25, 1000 s .. 1060 s: its app.down then is set aside; one after it | `app-down:srv-25`, open, linked to the change |
| recurrence | srv-20 disk error three times | `disk-fault:srv-20/sda`, reopened twice, in a problem |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

STORM_END = 1200.0  # storm seconds
HEARTBEAT = 30.0
CORE1_DOWN, CORE1_UP = 300.0, 600.0
ACC8_UP = 900.0
MAINTENANCE = (1000.0, 1060.0)
SEED = 14

CORES = ["core-1", "core-2"]
DISTS = [f"dist-{i}" for i in range(1, 5)]
ACCS = [f"acc-{i}" for i in range(1, 17)]
SRVS = [f"srv-{i}" for i in range(1, 33)]
CIS = CORES + DISTS + ACCS + SRVS


def dist_of(acc: int) -> int:
    return (acc - 1) // 4 + 1


def acc_of(srv: int) -> int:
    return (srv - 1) // 2 + 1


def behind_core1() -> list[str]:
    """Every CI whose path goes through core-1 (dist-1, dist-2 and what hangs off them)."""
    accs = [a for a in range(1, 17) if dist_of(a) <= 2]
    return [
        "dist-1",
        "dist-2",
        *(f"acc-{a}" for a in accs),
        *(f"srv-{s}" for s in range(1, 33) if acc_of(s) in accs),
    ]


@dataclass(frozen=True)
class Expected:
    """One row of the incident table as the NOC sees it at the end of the storm."""

    key: str
    status: str  # new (open, untouched) or resolved
    reopen_count: int = 0
    change: bool = False  # linked to the maintenance change as its suspected cause
    problem: bool = False  # in a problem (recurrence)
    min_events: int = 1  # events linked to it at least (a root carries its symptoms)


def topology_text() -> str:
    lines = ["# The storm's network: two cores, four distribution, 16 access switches, 32 servers.", "cis:"]
    lines += [f"  {c}: {{}}" for c in CORES]
    for d in range(1, 5):
        core = 1 if d <= 2 else 2
        lines.append(f"  dist-{d}: {{parents: [{{ci: core-{core}, port: Te1/0/1, parent_port: Te1/1/{d}}}]}}")
    for a in range(1, 17):
        port = (a - 1) % 4 + 1
        lines.append(
            f"  acc-{a}: {{parents: [{{ci: dist-{dist_of(a)}, port: Gi0/48, parent_port: Gi1/0/{port}}}]}}"
        )
    lines += [f"  srv-{s}: {{depends_on: [acc-{acc_of(s)}]}}" for s in range(1, 33)]
    return "\n".join(lines) + "\n"


def _d(seconds: float, scale: float) -> str:
    return f"{seconds * scale:g}s"


def rules_text(scale: float = 1.0) -> dict[str, str]:
    s = scale
    level1 = """\
rules:
  - name: drop-debug
    description: debug chatter is not for the NOC
    match: {type: syslog.debug}
    drop: true
"""
    level2 = f"""\
rules:
  - name: root-cause
    kind: topology
    topology: ../topology.yaml
    down: {{type: snmp.unreachable, severity: {{not_equals: clear}}}}
    up: {{type: snmp.unreachable, severity: clear}}
    settle: {_d(60, s)}
    adopt_within: {_d(120, s)}
    title: "{{host}} down"

  - name: interface-flapping
    kind: flapping
    match: {{type: {{in: ["IF-MIB::linkDown", "IF-MIB::linkUp"]}}}}
    group_by: [host, resource]
    state: type
    within: {_d(300, s)}
    high: 6
    low: 2
    flapping_type: interface.flapping
    on_start: [{{incident: {{action: open, title: "interface {{resource}} on {{host}} is flapping"}}}}]
    on_stop: [{{incident: {{action: resolve}}}}]

  - name: link-down
    kind: pair
    match: {{type: "IF-MIB::linkDown"}}
    close: {{type: "IF-MIB::linkUp"}}
    group_by: [host, resource]
    within: {_d(30, s)}
    timeout_type: link.down
    on_timeout: [{{incident: {{action: open, title: "{{host}} interface {{resource}} down"}}}}]
    on_recover: [{{incident: {{action: resolve}}}}]

  - name: snmp-brute-force
    kind: threshold
    match: {{type: "SNMPv2-MIB::authenticationFailure"}}
    count: 20
    within: {_d(60, s)}
    on_fire: [{{incident: {{action: open, title: "SNMP brute force against {{host}}", impact: 2, urgency: 1}}}}]

  - name: device-heartbeat
    kind: absence
    match: {{type: heartbeat}}
    every: {_d(120, s)}
    on_missed: [{{incident: {{action: open, title: "no heartbeat from {{host}}"}}}}]
    on_back: [{{incident: {{action: resolve}}}}]

  - name: app-errors
    kind: threshold
    match: {{type: app.error}}
    count: 3
    within: {_d(60, s)}
    on_fire: [{{incident: {{action: open, title: "{{host}}: application errors"}}}}]

  - name: app-down
    kind: threshold
    match: {{type: app.down}}
    count: 1
    within: {_d(60, s)}
    on_fire: [{{incident: {{action: open, title: "{{host}}: application down"}}}}]

  - name: disk-fault
    kind: pair
    match: {{type: disk.error}}
    close: {{type: disk.ok}}
    group_by: [host, resource]
    within: {_d(20, s)}
    on_timeout: [{{incident: {{action: open, title: "{{host}} disk {{resource}} failing"}}}}]
    on_recover: [{{incident: {{action: resolve}}}}]
"""
    return {"00-storm-noise.yaml": level1, "50-storm-correlation.yaml": level2}


def expected_incidents() -> list[Expected]:
    symptoms = len(behind_core1())
    return sorted(
        [
            Expected("root-cause:core-1", "resolved", min_events=symptoms),
            Expected("root-cause:acc-8", "resolved", min_events=2),
            Expected("link-down:dist-3/Gi1/0/9", "resolved"),
            Expected("interface-flapping:acc-14/Gi0/5", "resolved"),
            Expected("snmp-brute-force:core-2", "new"),
            Expected("device-heartbeat:srv-30", "new"),
            Expected("app-down:srv-25", "new", change=True),
            Expected("disk-fault:srv-20/sda", "resolved", reopen_count=2, problem=True),
        ],
        key=lambda e: e.key,
    )


def storm_changes(start: float, scale: float = 1.0) -> list[dict[str, Any]]:
    """The maintenance change (API body of POST /api/v1/changes); approve it before the storm."""
    a, b = MAINTENANCE
    return [
        {
            "title": "srv-25 application upgrade",
            "cis": ["srv-25"],
            "start": iso(start + a * scale),
            "end": iso(start + b * scale),
            "risk": "medium",
        }
    ]


async def approve_changes(changes: Any, start: float) -> None:
    """In process: the storm's maintenance change created and approved through a ChangeService."""
    for body in storm_changes(start):
        window = {
            k: datetime.fromisoformat(body[k].replace("Z", "+00:00")).timestamp() for k in ("start", "end")
        }
        c = await changes.create("noc", {**body, **window})
        await changes.act(c.id, "approve", "noc")


def storm(
    start: float, scale: float = 1.0
) -> tuple[list[dict[str, Any]], str, dict[str, str], list[Expected]]:
    """(events, topology, rules, expected_incidents): see the module doc."""
    raw = _timeline()
    raw.sort(key=lambda item: item[0])
    events = []
    for n, (t, host, type_, severity, resource) in enumerate(raw):
        ev: dict[str, Any] = {
            "id": f"storm-{n:05d}",
            "time": iso(start + t * scale),
            "host": host,
            "type": type_,
            "severity": severity,
        }
        if resource:
            ev["resource"] = resource
        events.append(ev)
    return events, topology_text(), rules_text(scale), expected_incidents()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Raw = tuple[float, str, str, str, str]  # storm time, host, type, severity, resource


def _timeline() -> list[Raw]:
    rnd = random.Random(SEED)
    out: list[Raw] = []
    down = set(behind_core1())
    back_at = _recovery_times(down)

    # Heartbeats: every CI every 30 s at its own phase; silent while cut off, srv-30 silent from 700 s.
    for i, ci in enumerate(CIS):
        phase = (i * 7) % 29 + 0.5
        t = phase
        while t <= STORM_END:
            cut_off = ci in down and CORE1_DOWN - 1 <= t < back_at[ci]
            if not cut_off and not (ci == "srv-30" and t >= 700):
                out.append((t, ci, "heartbeat", "info", ""))
            t += HEARTBEAT
        if ci in down:  # the first heartbeat comes with the answer, not at the next 30 s slot
            out.append((back_at[ci] + 1, ci, "heartbeat", "info", ""))
    if not any(h == "srv-25" and MAINTENANCE[0] <= t < MAINTENANCE[1] for t, h, *_ in out):
        raise AssertionError("the storm needs a heartbeat of srv-25 inside the maintenance window")

    # Noise that level 1 drops.
    for _ in range(1500):
        out.append((round(rnd.uniform(0, STORM_END), 3), rnd.choice(CIS), "syslog.debug", "info", ""))

    # Port blips: back within 3 s, far inside the 30 s pair window.
    for t, host, port in ((100, "acc-12", "Gi0/3"), (400, "dist-4", "Gi1/0/9"), (800, "acc-15", "Gi0/7")):
        out += [(t, host, "IF-MIB::linkDown", "major", port), (t + 3, host, "IF-MIB::linkUp", "clear", port)]

    # A real port outage on a healthy switch, on a port that faces nothing in the topology.
    out += [
        (200, "dist-3", "IF-MIB::linkDown", "major", "Gi1/0/9"),
        (1000, "dist-3", "IF-MIB::linkUp", "clear", "Gi1/0/9"),
    ]

    out += _core1_outage(rnd, down, back_at)

    # SNMP brute force against core-2: 60 failures in 30 s (the rule fires at 20 within 60 s).
    out += [(450 + k * 0.5, "core-2", "SNMPv2-MIB::authenticationFailure", "warning", "") for k in range(60)]

    # Flapping: acc-14 Gi0/5 down/up every 10 s, ten transitions ending up.
    for k in range(10):
        kind, sev = ("IF-MIB::linkDown", "major") if k % 2 == 0 else ("IF-MIB::linkUp", "clear")
        out.append((700 + 10 * k, "acc-14", kind, sev, "Gi0/5"))

    # Maintenance on srv-25 (1000-1060 s): app.down inside is set aside; the one after is an incident.
    out += [(t, "srv-25", "app.down", "major", "billing") for t in (1010, 1020, 1030, 1090)]

    # Recurrence: srv-20's disk fails three times, each an incident (re)opening; the third opens a problem.
    for t in (150, 350, 850):
        out += [(t, "srv-20", "disk.error", "major", "sda"), (t + 50, "srv-20", "disk.ok", "clear", "sda")]
    return out


def _recovery_times(down: set[str]) -> dict[str, float]:
    """When each CI behind core-1 answers again: within settle (60 s after core-1), but acc-8 and
    the servers behind it only at 900 s."""
    back: dict[str, float] = {}
    for i, ci in enumerate(sorted(down)):
        back[ci] = CORE1_UP + 5 + (i % 6) * 5  # 605 .. 630 s
    for ci in ("acc-8", "srv-15", "srv-16"):
        back[ci] = ACC8_UP + (0 if ci == "acc-8" else 5)
    return back


def _core1_outage(rnd: random.Random, down: set[str], back_at: dict[str, float]) -> list[Raw]:
    out: list[Raw] = []
    # The uplinks facing core-1 go down 2 s before core-1 is found unreachable (traps beat the poller).
    for d in ("dist-1", "dist-2"):
        out.append((CORE1_DOWN - 2, d, "IF-MIB::linkDown", "major", "Te1/0/1"))
    out.append((CORE1_DOWN, "core-1", "snmp.unreachable", "major", ""))
    devices = [c for c in sorted(down) if not c.startswith("srv-")]
    servers = [c for c in sorted(down) if c.startswith("srv-")]
    for ci in devices:
        # Unreachable, re-reported every 15 s by the poller until it answers again.
        t = CORE1_DOWN + 2 + rnd.uniform(0, 8)
        while t < back_at[ci]:
            out.append((round(t, 3), ci, "snmp.unreachable", "major", ""))
            t += 15
        out.append((back_at[ci], ci, "snmp.unreachable", "clear", ""))
    for ci in devices:
        if ci.startswith("acc-"):  # interface errors while the uplink path is dead
            t = CORE1_DOWN + rnd.uniform(0, 10)
            while t < CORE1_UP:
                out.append((round(t, 3), ci, "if.errors", "warning", "Gi0/48"))
                t += 10
        else:  # routing adjacencies toward the core lost
            for k in range(10):
                out.append((CORE1_DOWN + 5 + 30 * k, ci, "ospf.neighbor.down", "minor", "Te1/0/1"))
    for ci in servers:  # applications cannot reach their database behind the core
        t = CORE1_DOWN + rnd.uniform(0, 5)
        while t < CORE1_UP:
            out.append((round(t, 3), ci, "app.error", "major", "billing"))
            t += 5
    # Early recovery: dist-2's uplink is back before core-1 answers; dist-1's a little after (late).
    out.append((CORE1_UP - 5, "dist-2", "IF-MIB::linkUp", "clear", "Te1/0/1"))
    out.append((CORE1_UP + 15, "dist-1", "IF-MIB::linkUp", "clear", "Te1/0/1"))
    out.append((CORE1_UP, "core-1", "snmp.unreachable", "clear", ""))
    return out


def write_files(root: Path, start: float) -> tuple[Path, Path, Path, float]:
    """Write the storm as a replay takes it: `storm.ndjson`, `rules/`, `topology.yaml` and
    `changes.yaml` under `root`. Returns (recording, rules_dir, changes_file, wait): `wait` is the
    event time from the last event to the storm's end, for `correlator replay --wait`."""
    events, topology, rules, _ = storm(start)
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (root / "topology.yaml").write_text(topology)
    for name, text in rules.items():
        (rules_dir / name).write_text(text)
    recording = root / "storm.ndjson"
    recording.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    changes = root / "changes.yaml"
    changes.write_text(yaml.safe_dump({"changes": storm_changes(start)}))
    last = datetime.fromisoformat(events[-1]["time"].replace("Z", "+00:00")).timestamp()
    return recording, rules_dir, changes, max(start + STORM_END - last, 0.0)


if __name__ == "__main__":  # python -m tests.support.storm DIR: the storm as files, and the replay line
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "storm")
    rec, rules_dir, changes_file, wait = write_files(out, 1_796_032_800.0)
    print(f"correlator replay {rec} --rules {rules_dir} --changes {changes_file} --wait {wait:.0f}s")
