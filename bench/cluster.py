"""Scale-out mode end to end: webhook NDJSON batches -> ingest -> JetStream (3 nodes, R3) -> workers
-> PostgreSQL, beside the embedded mode in the same run; CPU per event of each hop; failover.

    .venv/bin/python bench/cluster.py [--events 60000] [--batch 500] [--conns 4] [--partitions 8]

Starts its own servers on free loopback ports (tests/support: nats-server, PostgreSQL's binaries)
and the real daemon processes. Events/s is end to end: from the first request until the last event
is stored. CPU per event is the user+system time of each process (PostgreSQL: the postmaster and
its backends) over the run, divided by the events. Failover: with 2 workers under a paced load,
one is SIGKILLed; the time until the other owns every partition and the backlog is stored, events
lost (acknowledged but not stored) and incidents opened twice. Short runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import http.client
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import cpu_seconds

from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.nats import NatsCluster
from tests.support.postgres import PostgresServer, _run, find_binaries

RULES = """
rules:
  - name: cpu
    kind: threshold
    match: {type: cpu.high}
    group_by: [host]
    count: 3
    within: 10m
    on_fire: [{incident: {action: open, title: "{host} CPU high", impact: 3, urgency: 3}}]
"""


def batches(n: int, size: int, hosts: int, tag: str) -> Iterator[bytes]:
    for start in range(0, n, size):
        lines = (
            orjson.dumps(
                {"id": f"{tag}-{i}", "host": f"h{i % hosts}", "type": "cpu.high", "severity": "minor"}
            )
            for i in range(start, min(start + size, n))
        )
        yield b"\n".join(lines)


def drive(port: int, bodies: list[bytes], conns: int, token: str | None = None) -> int:
    """POST every body (NDJSON), honouring 503 + Retry-After; returns the events acknowledged."""
    lock = threading.Lock()
    todo = list(reversed(bodies))
    acked = 0
    headers = {"Content-Type": "application/x-ndjson"}

    def worker() -> int:
        n = 0
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not todo:
                    return n
                body = todo.pop()
            while True:
                c.request("POST", "/api/v1/events", body, headers)
                r = c.getresponse()
                r.read()
                if r.status == 202:
                    n += body.count(b"\n") + 1
                    break
                if r.status != 503:
                    raise RuntimeError(f"HTTP {r.status}")
                time.sleep(float(r.getheader("Retry-After") or 1))

    with concurrent.futures.ThreadPoolExecutor(conns) as pool:
        for n in pool.map(lambda _: worker(), range(conns)):
            acked += n
    return acked


def stored(d: DaemonProcess) -> float:
    return d.metric("correlator_events_stored_total")


POLL = 0.1  # seconds between looks at /metrics while waiting: each look costs the daemon CPU


def settle(predicate: Any, timeout: float, what: str) -> None:
    """Wait for `predicate`, looking every POLL seconds (DaemonProcess.wait_for looks 20 times a
    second: a /metrics page costs a few ms of the daemon's CPU, which this bench would count)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL)


class Stack:
    def __init__(self, tmp: Path, partitions: int) -> None:
        self.tmp = tmp
        self.partitions = partitions
        self.nats = NatsCluster.create("/usr/sbin/nats-server")
        bindir = find_binaries()
        if bindir is None:
            raise SystemExit("PostgreSQL binaries missing: apt-get install -y postgresql")
        self.pg = PostgresServer.create(bindir)
        self.rules = tmp / "rules"
        self.rules.mkdir()
        (self.rules / "cpu.yaml").write_text(RULES)
        self.daemons: list[DaemonProcess] = []

    def start(self) -> None:
        self.nats.start()
        self.pg.start()

    def database(self) -> str:
        name = f"bench_{secrets.token_hex(3)}"
        _run(self.pg.dsn, f'CREATE DATABASE "{name}"')
        return f"{self.pg.dsn}/{name}"

    def daemon(self, name: str, role: str, stream: str = "", dsn: str = "", **extra: Any) -> DaemonProcess:
        work = self.tmp / name
        work.mkdir()
        port = free_port()
        cfg = base_config(work, port, rules_dir=str(self.rules), **extra)
        cfg["storage"]["fsync"] = True
        cfg["logging"] = {"level": "warning"}
        if role != "all":
            cfg["cluster"] = {
                "role": role,
                "servers": self.nats.servers,
                "stream": stream,
                "partitions": self.partitions,
                "replicas": 3,
                "lease_ttl": "3s",
                "dsn": dsn,
                "name": name,
            }
        d = DaemonProcess(work, cfg, port)
        d.start(timeout=60)
        self.daemons.append(d)
        return d

    def stop(self) -> None:
        for d in self.daemons:
            d.stop()
        self.nats.stop()
        self.pg.stop()


def run_embedded(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    d = stack.daemon("embedded", "all")
    bodies = list(batches(args.events, args.batch, args.hosts, "emb"))
    c0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()  # type: ignore[union-attr]
    acked = drive(d.port, bodies, args.conns)
    settle(lambda: stored(d) >= acked, 300, "embedded: everything stored")
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(d.proc.pid) - c0  # type: ignore[union-attr]
    d.stop()
    return {"mode": "embedded (SQLite)", "events": acked, "eps": acked / elapsed, "cpu": {"daemon": cpu}}


def run_cluster(stack: Stack, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    stream = f"b{secrets.token_hex(3)}"
    dsn = stack.database()
    ingest = stack.daemon(f"ingest-{stream}", "ingest", stream, dsn)
    ws = [stack.daemon(f"worker{i}-{stream}", "worker", stream, dsn) for i in range(workers)]
    share = stack.partitions // workers
    ws[0].wait_for(
        lambda: all(w.metric("correlator_cluster_partitions_owned") == share for w in ws), 60, "fair share"
    )
    bodies = list(batches(args.events, args.batch, args.hosts, stream))
    procs = {"ingest": ingest.proc.pid, **{f"worker{i}": w.proc.pid for i, w in enumerate(ws)}}  # type: ignore[union-attr]
    nats_pids = [n.proc.pid for n in stack.nats.nodes]  # type: ignore[union-attr]
    before = {k: cpu_seconds(p) for k, p in procs.items()}
    nats0 = sum(cpu_seconds(p) for p in nats_pids)
    pg0 = cpu_seconds(stack.pg.proc.pid, tree=True)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    acked = drive(ingest.port, bodies, args.conns)
    t_ingest = time.perf_counter() - t0
    settle(lambda: sum(stored(w) for w in ws) >= acked, 600, "cluster: everything stored")
    elapsed = time.perf_counter() - t0
    cpu = {k: cpu_seconds(p) - before[k] for k, p in procs.items()}
    cpu["nats (3 nodes)"] = sum(cpu_seconds(p) for p in nats_pids) - nats0
    cpu["postgresql"] = cpu_seconds(stack.pg.proc.pid, tree=True) - pg0  # type: ignore[union-attr]
    result = {
        "mode": f"cluster, {workers} worker(s)",
        "events": acked,
        "eps": acked / elapsed,
        "ingest_eps": acked / t_ingest,
        "cpu": cpu,
    }
    if workers == 2:
        result["failover"] = failover(ingest, ws, args, stream, dsn)
    for d in (ingest, *ws):
        d.stop()
    return result


def failover(
    ingest: DaemonProcess, ws: list[DaemonProcess], args: argparse.Namespace, stream: str, dsn: str
) -> dict[str, Any]:
    """A paced load over ~6 s; worker 0 is SIGKILLed after 2 s."""
    survivor, victim = ws[1], ws[0]
    bodies = list(batches(args.failover_events, 100, args.hosts, f"fo-{stream}"))
    pace = 6.0 / len(bodies)
    acked_ids: list[str] = []

    def paced() -> None:
        for body in bodies:
            drive(ingest.port, [body], 1)
            acked_ids.extend(orjson.loads(line)["id"] for line in body.split(b"\n"))
            time.sleep(pace)

    thread = threading.Thread(target=paced)
    thread.start()
    time.sleep(2.0)
    victim.kill()
    killed = time.perf_counter()
    survivor.wait_for(
        lambda: (
            survivor.metric("correlator_cluster_partitions_owned") == ingest.config["cluster"]["partitions"]
        ),
        60,
    )
    owned_after = time.perf_counter() - killed
    thread.join()
    want = set(acked_ids)
    ids = asyncio.run(_stored_ids(dsn, f"fo-{stream}-"))
    deadline = time.monotonic() + 60
    while not want <= ids and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = asyncio.run(_stored_ids(dsn, f"fo-{stream}-"))
    caught_up = time.perf_counter() - killed
    dup = asyncio.run(_duplicate_incidents(dsn))
    return {
        "partitions_taken_after_s": owned_after,
        "backlog_stored_after_s": caught_up,
        "acked": len(want),
        "lost": len(want - ids),
        "duplicate_incidents": dup,
    }


async def _stored_ids(dsn: str, prefix: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id FROM events WHERE id LIKE $1", prefix + "%")
        return {r["id"] for r in rows}
    finally:
        await conn.close()


async def _duplicate_incidents(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT key FROM incidents"
                " WHERE status IN ('new','acknowledged','in_progress','on_hold')"
                " GROUP BY key HAVING count(*) > 1) d"
            )
        )
    finally:
        await conn.close()


def ceiling(w: float, t: float, eps: float) -> str:
    """What this machine can do at all (docs/cluster.md, "Sizing"): one worker busy all the time
    takes 1/W events/s; every process together, C cores at T µs/event, at most C/T. So C cores hold
    at most C/T, and several workers on them beat one busy worker by at most C·W/T when that is
    more than 1 (never, when the worker's own cost W is under T/C): a gain over one worker beyond
    that is a single worker waiting on round trips rather than computing."""
    cores = os.cpu_count() or 1
    busy, cap = 1e6 / w, cores * 1e6 / t
    return (
        f"ceiling: one busy worker {busy:,.0f}/s; {cores} cores {cap:,.0f}/s (every process at {t:.0f} µs);"
        f" more workers here: at most {max(1.0, cores * w / t):.2f}x one busy worker,"
        f" {cap / eps:.2f}x this one (at {eps / busy:.0%} of busy)"
    )


def report(results: list[dict[str, Any]]) -> None:
    base = results[0]
    base_cpu = sum(base["cpu"].values()) / base["events"] * 1e6
    one = next((r for r in results if r["mode"].startswith("cluster, 1")), None)
    for r in results:
        per_event = {k: v / r["events"] * 1e6 for k, v in r["cpu"].items()}
        total = sum(per_event.values())
        line = f"{r['mode']:<22} {r['eps']:>9,.0f} events/s end to end"
        if "ingest_eps" in r:
            line += f" (acked at {r['ingest_eps']:,.0f}/s)"
        line += f"; CPU {total:.0f} µs/event ({total / base_cpu:.2f}x embedded)"
        line += f", {total * r['eps'] / 1e6:.2f} cores busy"
        if one is not None and r is not one and r["mode"].startswith("cluster"):
            line += f"; {r['eps'] / one['eps']:.2f}x one worker"
        print(line)
        print("    " + ", ".join(f"{k} {v:.0f} µs" for k, v in per_event.items()))
        if r is one:
            print("    " + ceiling(per_event["worker0"], total, r["eps"]))
        if "failover" in r:
            f = r["failover"]
            print(
                f"    failover: partitions taken {f['partitions_taken_after_s']:.1f} s after SIGKILL, backlog stored"
                f" after {f['backlog_stored_after_s']:.1f} s; {f['acked']} acked, {f['lost']} lost,"
                f" {f['duplicate_incidents']} duplicate incidents"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--hosts", type=int, default=2_000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--failover-events", type=int, default=6_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="correlator-bench-cluster-") as tmp:
        stack = Stack(Path(tmp), args.partitions)
        try:
            stack.start()
            results = [run_embedded(stack, args), run_cluster(stack, args, 1), run_cluster(stack, args, 2)]
        finally:
            stack.stop()
    print(
        f"{args.events} events in NDJSON batches of {args.batch}, {args.conns} connections, {args.hosts} hosts;"
        f" load average {os.getloadavg()[0]:.1f} at the end (other processes take cores from the run)"
    )
    report(results)


if __name__ == "__main__":
    main()
