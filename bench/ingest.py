"""Ingest benchmark: webhook NDJSON batches, single-event POSTs, a paced 5,000 ev/s run, and replay.

Starts the real daemon (uvloop, fsync on) on a free port with a fresh data directory, drives it from a
separate client process, and prints events/s, received->stored latency percentiles (from the daemon's
own histogram) and the daemon's peak resident memory.

    .venv/bin/python bench/ingest.py [--seconds 10] [--only batch,single,paced,replay]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from _measure import peak_rss_mib

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event(i: int) -> dict[str, object]:
    return {
        "host": f"sw{i % 500}",
        "type": "IF-MIB::linkDown" if i % 2 else "IF-MIB::linkUp",
        "severity": "major" if i % 2 else "clear",
        "resource": f"Gi0/{i % 48}",
        "message": "interface changed state",
        "attributes": {"ifIndex": i % 48, "ifDescr": f"GigabitEthernet0/{i % 48}"},
    }


class Daemon:
    def __init__(
        self, workdir: Path, rules: Path | None = None, extra_config: str = "", workers: int = 0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = workdir / "correlator.yaml"
        cfg.write_text(
            f"http: {{listen: '127.0.0.1:{self.port}', max_body_bytes: 4194304, workers: {workers}}}\n"
            f"storage: {{data_dir: '{workdir / 'var'}', fsync: true}}\n"
            f"rules_dir: '{rules or workdir / 'no-rules'}'\nlogging: {{level: warning}}\n" + extra_config
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "correlator", "run", "--config", str(cfg)], cwd=workdir
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not start")

    def metrics(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        body = urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                key = s.name + ("{le=" + s.labels["le"] + "}" if "le" in s.labels else "")
                out[key] = out.get(key, 0.0) + s.value
        return out

    def wait_drained(self, expected: float) -> None:
        """Until `expected` events are processed and the queue is empty: a request wrk gave up on at
        its end can still be accepted after the count was taken, and its latency must not land in
        the next run's histogram."""
        while True:
            m = self.metrics()
            if m.get("correlator_events_processed_total", 0) >= expected and not m.get(
                "correlator_queue_depth_events", 0
            ):
                return
            time.sleep(0.05)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def quantiles(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """p50 and p99 of received->stored from the histogram delta (upper bucket bound, as Prometheus does)."""
    name = "correlator_pipeline_latency_seconds_bucket"
    buckets = sorted(
        (float(k[len(name) + 4 : -1]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(name + "{")
    )
    total = buckets[-1][1] if buckets else 0.0

    def q(p: float) -> float:
        prev_le, prev_n = 0.0, 0.0
        for le, n in buckets:
            if n >= p * total:
                if le == float("inf"):
                    return prev_le
                frac = (p * total - prev_n) / (n - prev_n) if n > prev_n else 1.0
                return prev_le + (le - prev_le) * frac
            prev_le, prev_n = le, n
        return float("nan")

    return q(0.5), q(0.99)


# ---- client side (runs in its own process so it does not share the daemon's core) ----


async def _post_batches(
    url: str, seconds: float, batch: int, conc: int, paced_rate: float
) -> tuple[int, int]:
    import aiohttp

    bodies = [b"".join(orjson.dumps(event(i * batch + j)) + b"\n" for j in range(batch)) for i in range(16)]
    accepted = 0
    refused = 0
    deadline = time.monotonic() + seconds
    interval = (batch * conc / paced_rate) if paced_rate else 0.0

    async def worker(w: int, session: aiohttp.ClientSession) -> None:
        nonlocal accepted, refused
        n = 0
        next_at = time.monotonic() + w * interval / max(conc, 1)
        while time.monotonic() < deadline:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            body = bodies[n % len(bodies)]
            n += 1
            if batch == 1:
                async with session.post(
                    url, data=body[:-1], headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()
                    ok = r.status == 202
            else:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/x-ndjson"}
                ) as r:
                    await r.read()
                    ok = r.status == 202
            if ok:
                accepted += batch
            else:
                refused += batch

    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(w, session) for w in range(conc)))
    return accepted, refused


def _client(url: str, seconds: float, batch: int, conc: int, rate: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        import uvloop

        out.put(uvloop.run(_post_batches(url, seconds, batch, conc, rate)))
    except ImportError:
        out.put(asyncio.run(_post_batches(url, seconds, batch, conc, rate)))


def drive(d: Daemon, seconds: float, batch: int, conc: int, rate: float = 0.0) -> dict[str, float]:
    before = d.metrics()
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    t0 = time.perf_counter()
    p = mp.Process(target=_client, args=(d.url + "/api/v1/events", seconds, batch, conc, rate, q))
    p.start()
    accepted, refused = q.get()
    p.join()
    d.wait_drained(before.get("correlator_events_processed_total", 0) + accepted)
    elapsed = time.perf_counter() - t0
    p50, p99 = quantiles(before, d.metrics())
    return {
        "events_per_s": accepted / elapsed,
        "accepted": accepted,
        "refused_503": refused,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
    }


def drive_wrk(
    d: Daemon, seconds: float, conc: int, batch: int = 1, honour_retry_after: bool = False
) -> dict[str, float] | None:
    """POSTs from wrk (C, Debian package `wrk`), which leaves the CPU to the daemon.

    batch=1 sends one JSON event per request; more sends NDJSON batches. events/s counts what the
    daemon stored, from the start of the load until the queue is drained again (sustained rate).
    honour_retry_after: a connection that got a 503 waits Retry-After seconds before its next
    request, as a well-behaved sender does; without it wrk re-sends at once (overload).
    """
    import shutil

    if shutil.which("wrk") is None:
        return None
    if batch == 1:
        text, ctype = orjson.dumps(event(1)).decode(), "application/json"
    else:
        text = "".join(orjson.dumps(event(i)).decode() + "\n" for i in range(batch))
        ctype = "application/x-ndjson"
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "{ctype}"\n'
            + (
                "waits = 0\n"
                "response = function(status, headers, body)\n"
                "  if status == 503 then waits = waits + 1; retry = tonumber(headers['Retry-After']) end\n"
                "end\n"
                "delay = function()\n"
                "  if waits > 0 then waits = waits - 1; return math.floor((retry or 1) * 1000) end\n"
                "  return 0\nend\n"
                if honour_retry_after
                else ""
            )
            + "done = function(summary, latency, requests)\n"
            "  io.write(string.format('WRK %d %d %d %d\\n', summary.requests, summary.errors.status,"
            " latency:percentile(50), latency:percentile(99)))\nend\n"
        )
        before = d.metrics()
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                "wrk",
                "-t1" if batch > 1 else "-t2",
                f"-c{conc}",
                f"-d{int(seconds)}s",
                "-s",
                str(script),
                d.url + "/api/v1/events",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    accepted = d.metrics().get("correlator_events_received_total", 0) - before.get(
        "correlator_events_received_total", 0
    )
    d.wait_drained(before.get("correlator_events_processed_total", 0) + accepted)
    elapsed = time.perf_counter() - t0
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    _requests, bad, p50_us, p99_us = (int(v) for v in line.split()[1:])
    return {
        "events_per_s": accepted / elapsed,
        "non_2xx": bad,
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
    }


def bench_replay(n: int) -> dict[str, float]:
    from correlator import gctune
    from correlator.config import Config
    from correlator.pipeline.assemble import build_pipeline
    from correlator.replay import replay

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.ndjson"
        rnd = random.Random(1)
        t = 1_800_000_000.0
        with path.open("wb") as f:
            for i in range(n):
                t += rnd.random()
                f.write(orjson.dumps({**event(i), "time": t, "id": f"e{i}"}) + b"\n")
        config = Config(rules_dir=Path(tmp) / "no-rules")
        pipeline = build_pipeline(config)
        gctune.tune()  # as `correlator replay` does
        summary = asyncio.run(replay(path, pipeline))
    return {"events_per_s": summary.events_in / summary.elapsed_seconds, "events": summary.events_in}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--only", default="batch,single,paced,replay")
    ap.add_argument(
        "--rules", type=Path, help="rule directory for the daemon (default: none, the bare pipeline)"
    )
    args = ap.parse_args()
    if args.rules is not None:
        # The daemon runs in a temporary directory: a relative path would silently mean no rules.
        args.rules = args.rules.resolve()
        if not args.rules.is_dir():
            ap.error(f"--rules {args.rules}: not a directory")
    which = set(args.only.split(","))
    print(f"# correlator ingest benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    if which & {"batch", "single", "paced"}:
        with tempfile.TemporaryDirectory() as tmp:
            d = Daemon(Path(tmp), args.rules)
            try:
                if "batch" in which:
                    # Senders that wait Retry-After after a 503, then an overload: more senders
                    # that re-send at once, so the queue fills and the 503s cost CPU too.
                    for conns, honour, how in (
                        (8, True, "waits Retry-After"),
                        (32, True, "waits Retry-After"),
                        (32, False, "re-sends at once"),
                    ):
                        w = drive_wrk(d, args.seconds, conc=conns, batch=500, honour_retry_after=honour)
                        if w is not None:
                            print(
                                f"webhook NDJSON x500 (wrk), {conns} conns, on 503 {how}: "
                                f"{w['events_per_s']:>9,.0f} ev/s sustained  (503s: {w['non_2xx']:.0f} requests)"
                            )
                    if w is None:
                        r = drive(d, args.seconds, batch=500, conc=8)
                        print(
                            f"webhook NDJSON x500, 8 conns : {r['events_per_s']:>9,.0f} ev/s  "
                            f"(503s: {r['refused_503']:.0f}; Python client: install wrk)"
                        )
                if "single" in which:
                    w = drive_wrk(d, args.seconds, conc=50)
                    if w is not None:
                        print(
                            f"webhook single POST (wrk), 50 conns: {w['events_per_s']:>9,.0f} ev/s  "
                            f"request p50 {w['p50_ms']:.1f} ms  p99 {w['p99_ms']:.1f} ms  (non-2xx: {w['non_2xx']:.0f})"
                        )
                    else:
                        r = drive(d, args.seconds, batch=1, conc=50)
                        print(
                            f"webhook single POST, 50 conns: {r['events_per_s']:>9,.0f} ev/s  "
                            f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  (Python client: install wrk)"
                        )
                if "paced" in which:
                    for rate, batch in ((5000, 50), (15000, 100)):
                        r = drive(d, args.seconds, batch=batch, conc=4, rate=rate)
                        print(
                            f"paced {rate:,} ev/s (x{batch}) : {r['events_per_s']:>9,.0f} ev/s  "
                            f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms received->stored"
                        )
                print(f"daemon peak RSS              : {d.peak_rss_mib():.0f} MiB")
            finally:
                d.stop()
    if "replay" in which:
        r = bench_replay(200_000)
        print(f"replay, no rules, 200k events: {r['events_per_s']:>9,.0f} ev/s")


if __name__ == "__main__":
    main()
