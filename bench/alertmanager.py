"""Alertmanager beside the correlator: the same generated alerts posted to each, one after the other.

Run: .venv/bin/python bench/alertmanager.py [--seconds 10] [--connections 16] [--alerts 100000]
     [--per-request 100] [--rules rules] [--bare] [--no-alertmanager] [--workers N,...]

Generates `--alerts` distinct label sets and posts them in requests of `--per-request` alerts with
`wrk` (Debian package; this script installs nothing), cycling through them:
- to Debian's `prometheus-alertmanager` (`POST /api/v2/alerts`, alerts kept in memory; skipped with
  a message when it is not installed),
- to the correlator (uvloop, journal fsync on) as Alertmanager webhooks (`POST
  /api/v1/webhooks/prometheus`, version 4 payloads), with the rules of `--rules` (the shipped ones by
  default) and, with `--bare`, once more with no rules (the bare pipeline); `--workers 0,1` runs
  each once per `http.workers` value (the workers' CPU counts with the daemon's, and is also
  shown apart: the daemon, its event loop's thread and its µs per alert, the workers).
For each it prints accepted alerts/s (the correlator's: stored from the start of the load until its
queue is drained again, so the figure is sustained, not just acknowledged), the server's CPU-seconds
(user + system, every thread) and alerts per CPU-second, peak RSS and wrk's request latency, then
the ratios to Alertmanager. Short runs on a shared machine are noisy: note the load average printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import cpu_seconds, peak_rss_mib, thread_cpu_seconds
from ingest import Daemon, free_port  # bench/ingest.py: the daemon under test

NAMES = ("HighCPU", "DiskFull", "InstanceDown", "HighLatency", "PodCrashLooping", "LinkErrors")
SEVERITIES = ("critical", "warning", "warning", "info", "major")


@dataclass
class Figures:
    alerts: float
    alerts_per_s: float
    cpu_seconds: float
    peak_rss_mib: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    # The correlator's split of cpu_seconds: the daemon (every thread), its event loop's thread
    # alone, and the HTTP workers.
    daemon_cpu: float | None = None
    loop_cpu: float | None = None
    workers_cpu: float | None = None


def label_sets(n: int) -> list[dict[str, str]]:
    """n distinct label sets, shaped like node-exporter and kube alerts."""
    out = []
    for i in range(n):
        labels = {
            "alertname": NAMES[i % len(NAMES)],
            "instance": f"node{i % 2000}:9100",
            "job": "node",
            "severity": SEVERITIES[i % len(SEVERITIES)],
            "device": f"dev{i // 2000}",
        }
        if i % 3 == 0:
            labels["category"] = "infrastructure"
        out.append(labels)
    return out


def bodies(n: int, per_request: int, webhook: bool) -> list[bytes]:
    now = datetime.now(UTC)
    starts = now.isoformat().replace("+00:00", "Z")
    sets = label_sets(n)
    out = []
    for first in range(0, n, per_request):
        alerts = []
        for j, labels in enumerate(sets[first : first + per_request]):
            a: dict[str, object] = {
                "labels": labels,
                "annotations": {"summary": f"{labels['alertname']} on {labels['instance']}"},
                "startsAt": starts,
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            }
            if webhook:  # what Alertmanager itself sends on to a webhook receiver
                a["status"] = "firing"
                a["endsAt"] = "0001-01-01T00:00:00Z"
                a["fingerprint"] = f"{first + j:016x}"
            alerts.append(a)
        if webhook:
            doc: object = webhook_document(alerts)
        else:
            doc = alerts
        out.append(orjson.dumps(doc))
    return out


def webhook_document(alerts: list[dict[str, object]]) -> dict[str, object]:
    """The envelope Alertmanager sends a webhook receiver, around `alerts`."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "correlator",
        "externalURL": "http://alertmanager:9093",
        "groupKey": '{}:{alertname="bench"}',
        "alerts": alerts,
    }


def run_wrk(
    url: str, payloads: list[bytes], seconds: float, connections: int, tmp: Path
) -> tuple[int, int, float, float]:
    """wrk cycling through the payloads; returns (requests, non-2xx, p50 ms, p99 ms)."""
    for i, p in enumerate(payloads):
        (tmp / f"body{i}").write_bytes(p)
    script = tmp / "post.lua"
    script.write_text(
        "local bodies = {}\n"
        f"for i = 0, {len(payloads) - 1} do\n"
        f'  local f = io.open("{tmp}/body" .. i, "rb"); bodies[#bodies + 1] = f:read("*a"); f:close()\n'
        "end\n"
        "local n = math.random(#bodies)\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n"
        "  n = n % #bodies + 1\n"
        '  return wrk.format("POST", nil, headers, bodies[n])\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('WRK %d %d %d %d\\n', summary.requests, summary.errors.status,"
        " latency:percentile(50), latency:percentile(99)))\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    requests, bad, p50_us, p99_us = (int(v) for v in line.split()[1:])
    return requests, bad, p50_us / 1000, p99_us / 1000


def split_cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(the process, its main thread (the event loop), its descendants (the HTTP workers))."""
    own = cpu_seconds(pid)
    return own, thread_cpu_seconds(pid, pid), cpu_seconds(pid, tree=True) - own


def bench_alertmanager(a: argparse.Namespace, binary: str) -> Figures:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        port = free_port()
        cfg = tmp / "alertmanager.yml"
        cfg.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                f"--storage.path={tmp / 'data'}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    urllib.request.urlopen(url + "/-/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                raise RuntimeError("alertmanager did not start")
            payloads = bodies(a.alerts, a.per_request, webhook=False)
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            requests, bad, p50, p99 = run_wrk(url + "/api/v2/alerts", payloads, a.seconds, a.connections, tmp)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            accepted = (requests - bad) * a.per_request
            return Figures(accepted, accepted / elapsed, cpu, peak_rss_mib(proc.pid), p50, p99, bad)
        finally:
            proc.terminate()
            proc.wait(30)


def bench_correlator(a: argparse.Namespace, rules: Path | None, workers: int) -> Figures:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        webhook = "collectors: {webhook: {sources: {prometheus: {format: alertmanager}}}}\n"
        d = Daemon(tmp, rules, webhook, workers)
        try:
            # The workers start after the daemon answers, and take the port once connected.
            deadline = time.monotonic() + 30
            while d.metrics().get("correlator_http_workers_connected", 0) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} http workers did not connect")
                time.sleep(0.05)
            payloads = bodies(a.alerts, a.per_request, webhook=True)
            before = d.metrics()
            cpu0, t0 = split_cpu_seconds(d.proc.pid), time.perf_counter()
            _requests, bad, p50, p99 = run_wrk(
                d.url + "/api/v1/webhooks/prometheus", payloads, a.seconds, a.connections, tmp
            )
            accepted = d.metrics().get("correlator_events_received_total", 0) - before.get(
                "correlator_events_received_total", 0
            )
            d.wait_drained(before.get("correlator_events_processed_total", 0) + accepted)
            elapsed = time.perf_counter() - t0
            daemon, loop, children = (b - a for a, b in zip(cpu0, split_cpu_seconds(d.proc.pid), strict=True))
            return Figures(
                accepted,
                accepted / elapsed,
                daemon + children,
                d.peak_rss_mib(),
                p50,
                p99,
                bad,
                daemon,
                loop,
                children,
            )
        finally:
            d.stop()


def show(name: str, f: Figures, seconds: float) -> None:
    per_cpu = f.alerts / f.cpu_seconds if f.cpu_seconds else float("nan")
    print(
        f"{name:<48} {f.alerts_per_s:>9,.0f} alerts/s  CPU {f.cpu_seconds:5.1f} s "
        f"({f.cpu_seconds / seconds:.2f} cores, {per_cpu:,.0f} alerts/CPU-s)  peak RSS {f.peak_rss_mib:,.0f} MiB  "
        f"request p50 {f.p50_ms:.0f} ms p99 {f.p99_ms:.0f} ms  non-2xx {f.non_2xx}"
    )
    if f.daemon_cpu is not None and f.loop_cpu is not None and f.workers_cpu is not None and f.alerts:
        print(
            f"{'':<48} daemon CPU {f.daemon_cpu:5.1f} s (event loop {f.loop_cpu:5.1f} s, "
            f"{f.loop_cpu / f.alerts * 1e6:.1f} µs per alert), workers CPU {f.workers_cpu:5.1f} s"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--alerts", type=int, default=100_000, help="distinct label sets")
    p.add_argument("--per-request", type=int, default=100)
    p.add_argument("--rules", type=Path, default=Path(__file__).resolve().parents[1] / "rules")
    p.add_argument("--bare", action="store_true", help="also run the correlator with no rules")
    p.add_argument("--no-alertmanager", action="store_true")
    p.add_argument("--workers", default="0", help="comma-separated http.workers values, e.g. 0,1")
    a = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package `wrk`); this benchmark installs nothing")
    print(
        f"# {a.alerts:,} label sets, {a.per_request} alerts per request, wrk -c{a.connections} "
        f"{a.seconds:g} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    am: Figures | None = None
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if a.no_alertmanager:
        pass
    elif binary is None:
        print("alertmanager: not installed (Debian package `prometheus-alertmanager`), skipped")
    else:
        am = bench_alertmanager(a, binary)
        show("alertmanager /api/v2/alerts", am, a.seconds)
    runs = [(f"correlator webhook, rules {a.rules.name}", a.rules)]
    if a.bare:
        runs.append(("correlator webhook, no rules", None))
    for (name, rules), workers in [(r, int(w)) for r in runs for w in a.workers.split(",")]:
        f = bench_correlator(a, rules, workers)
        name = f"{name}, http.workers {workers}" if workers else name
        show(name, f, a.seconds)
        if am is not None and am.alerts_per_s and am.cpu_seconds and f.cpu_seconds:
            print(
                f"{'':<48} ratio to alertmanager: {f.alerts_per_s / am.alerts_per_s:.2f}x alerts/s, "
                f"{(f.alerts / f.cpu_seconds) / (am.alerts / am.cpu_seconds):.2f}x per CPU-second"
            )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
