"""Rules at scale, beside SEC: replay throughput from 10 to 10,000 rules over 20,000 event types,
rule-set load time and memory, a reload after one file of 100 changed, `rules test` on the shipped tests.

Run: .venv/bin/python bench/rules_scale.py [--events 100000] [--rules 10,100,1000,10000]
         [--types 20000] [--sec-events 5000] [--sec-max-rules 1000] [--only replay,load,reload,test]

The script writes, in a temporary directory, one stream and for each rule count the same rules twice:
correlator rule files (100 rules per file) and a SEC configuration. The rules are of three families,
each pinned to its own event types: `cpu-N` (threshold: 3 events per host within 1 h), `auth-N`
(auth burst: 3 failures per host and user within 1 h) and `link-N` (link pair: linkDown, then
linkUp of the same host and interface within 1 h, which emits one event). 80% of the events go to
the rules' types (45% threshold, 45% auth, 10% link), 20% to types no rule names, so every run
sees `--types` distinct types.

Replay is timed as a whole process (`correlator replay FILE --rules DIR -o OUT`: start-up, rule
load, parsing, both rule levels, writing the output), wall clock and CPU, with the rule parse cache
warm (each rule set is checked once first, as on a machine that has loaded its rules before); the
smallest and largest sets then run again without it (`CORRELATOR_CACHE_DIR=`). The CPU counts the
child that reads the recording while the replay correlates (docs/architecture.md "Replay's
reading"). SEC (Debian package `sec`) runs on the first `--sec-events` events when installed (it
tries every rule's regular expression on every line, so it gets a shorter stream), and the
correlator runs on that stream too; their outputs (threshold fires, auth bursts, closed link pairs)
are compared. The windows are 1 h and the stream spans 100 s of event time, so SEC's arrival-time
windows and the correlator's event-time windows give the same answer. Nothing here is installed;
SEC is skipped with a message.
The machine is shared: CPU seconds are steadier than wall seconds; both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0
HOSTS = [f"h{i:02d}" for i in range(10)]
USERS = [f"u{i}" for i in range(5)]
PORTS = [f"if{i}" for i in range(4)]
PER_FILE = 100
OUT_TYPES = ("storm.cpu", "burst.auth", "pair.link")
FAMILIES, WEIGHTS = ("cpu", "auth", "link"), (0.45, 0.45, 0.10)  # of the events that go to rules


# -- the rules, twice -------------------------------------------------------------------------------
def family(i: int) -> str:
    return ("cpu", "auth", "link")[i % 3]


def correlator_rule(i: int) -> str:
    f = family(i)
    if f == "cpu":
        return (
            f"  - name: cpu-{i}\n    kind: threshold\n    match: {{type: cpu.high.{i}}}\n"
            f"    group_by: [host]\n    count: 3\n    within: 1h\n"
            f"    on_fire: [{{emit: {{type: storm.cpu, message: 'cpu-{i} {{host}}'}}}}]\n"
        )
    if f == "auth":
        return (
            f"  - name: auth-{i}\n    kind: threshold\n    match: {{type: auth.fail.{i}}}\n"
            f"    group_by: [host, attributes.user]\n    count: 3\n    within: 1h\n"
            f"    on_fire: [{{emit: {{type: burst.auth, message: 'auth-{i} {{host}} {{attributes.user}}'}}}}]\n"
        )
    return (
        f"  - name: link-{i}\n    kind: pair\n    match: {{type: link.down.{i}}}\n"
        f"    close: {{type: link.up.{i}}}\n    group_by: [host, resource]\n    within: 1h\n"
        f"    on_close: [{{emit: {{type: pair.link, message: 'link-{i} {{host}} {{resource}}'}}}}]\n"
    )


def sec_rule(i: int) -> str:
    f = family(i)
    if f == "cpu":
        return (
            f"type=SingleWithThreshold\nptype=RegExp\npattern=^\\S+ (\\S+) cpu\\.high\\.{i}$\n"
            f"desc=cpu-{i} $1\naction=write - storm.cpu cpu-{i} $1\nwindow=3600\nthresh=3\n\n"
        )
    if f == "auth":
        return (
            f"type=SingleWithThreshold\nptype=RegExp\npattern=^\\S+ (\\S+) auth\\.fail\\.{i} (\\S+)$\n"
            f"desc=auth-{i} $1 $2\naction=write - burst.auth auth-{i} $1 $2\nwindow=3600\nthresh=3\n\n"
        )
    return (
        f"type=PairWithWindow\nptype=RegExp\npattern=^\\S+ (\\S+) link\\.down\\.{i} (\\S+)$\n"
        f"desc=link-{i} $1 $2\naction=none\nptype2=RegExp\npattern2=^\\S+ $1 link\\.up\\.{i} $2$\n"
        f"desc2=link-{i} $1 $2\naction2=write - pair.link link-{i} $1 $2\nwindow=3600\n\n"
    )


def write_rules(base: Path, n: int) -> tuple[Path, Path]:
    rules_dir = base / f"rules-{n}"
    rules_dir.mkdir(exist_ok=True)
    for start in range(0, n, PER_FILE):
        body = "".join(correlator_rule(i) for i in range(start, min(start + PER_FILE, n)))
        (rules_dir / f"{start // PER_FILE:04d}.yaml").write_text("rules:\n" + body)
    sec_conf = base / f"sec-{n}.conf"
    sec_conf.write_text("".join(sec_rule(i) for i in range(n)))
    return rules_dir, sec_conf


# -- the stream --------------------------------------------------------------------------------------
def write_stream(base: Path, n_rules: int, events: int, types: int, seed: int = 1) -> tuple[Path, Path]:
    """The same events as NDJSON (correlator) and as text lines (SEC): `time host type [arg]`."""
    rnd = random.Random(seed)
    rule_types = sum(2 if family(i) == "link" else 1 for i in range(n_rules))
    noise = max(types - rule_types, 1)
    link_down: set[tuple[int, str, str]] = set()  # keys whose link is down: the next event is its up
    ndjson, lines = [], []
    for j in range(events):
        t = T0 + j * (100.0 / events)
        host = rnd.choice(HOSTS)
        extra = ""
        ev: dict[str, object] = {"time": t, "host": host}
        if rnd.random() < 0.8:
            f = rnd.choices(FAMILIES, WEIGHTS)[0]
            i = rnd.randrange(FAMILIES.index(f), n_rules, 3) if n_rules > 2 else rnd.randrange(n_rules)
            f = family(i)
            if f == "cpu":
                ev["type"] = f"cpu.high.{i}"
            elif f == "auth":
                ev["type"] = f"auth.fail.{i}"
                user = rnd.choice(USERS)
                ev["attributes"] = {"user": user}
                extra = f" {user}"
            else:
                port = rnd.choice(PORTS)
                key = (i, host, port)
                up = key in link_down
                (link_down.discard if up else link_down.add)(key)
                ev["type"] = f"link.{'up' if up else 'down'}.{i}"
                ev["resource"] = port
                extra = f" {port}"
        else:
            ev["type"] = f"noise.{rnd.randrange(noise)}"
        ndjson.append(orjson.dumps(ev))
        lines.append(f"{t:.3f} {host} {ev['type']}{extra}")
    stem = base / f"stream-{n_rules}-{events}"
    nd, txt = stem.with_suffix(".ndjson"), stem.with_suffix(".log")
    nd.write_bytes(b"\n".join(ndjson) + b"\n")
    txt.write_text("\n".join(lines) + "\n")
    return nd, txt


# -- running things ----------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    # Byte-code caching on, as an installed correlator has it (some shells here turn it off).
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(
    cmd: list[str], stdout: Path | None = None
) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """Wall and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    if stdout is not None:
        with stdout.open("wb") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=child_env(), check=False)
    else:
        done = subprocess.run(cmd, capture_output=True, env=child_env(), check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return wall, cpu, done


def replay(rules_dir: Path, stream: Path, out: Path) -> tuple[float, float, Counter[str]]:
    cmd = [
        sys.executable,
        "-m",
        "correlator",
        "replay",
        str(stream),
        "--rules",
        str(rules_dir),
        "-o",
        str(out),
    ]
    wall, cpu, _ = timed(cmd)
    made: Counter[str] = Counter()
    with out.open("rb") as f:
        for line in f:
            t = orjson.loads(line)["type"]
            if t in OUT_TYPES:
                made[t] += 1
    return wall, cpu, made


def sec(conf: Path, stream: Path, out: Path) -> tuple[float, float, Counter[str]]:
    sec_bin = shutil.which("sec")
    assert sec_bin is not None
    cmd = [sec_bin, f"--conf={conf}", f"--input={stream}", "--notail", "--log=/dev/null", "--debug=1"]
    wall, cpu, _ = timed(cmd, stdout=out)
    made = Counter(line.split(" ", 1)[0] for line in out.read_text().splitlines() if line)
    return wall, cpu, made


# -- the parts ---------------------------------------------------------------------------------------
def bench_replay(base: Path, args: argparse.Namespace) -> None:
    print(f"\n## replay, whole process ({args.events:,} events, {args.types:,} event types)", flush=True)
    have_sec = shutil.which("sec") is not None
    if not have_sec:
        print("SEC not installed (Debian package `sec`): its columns are skipped")
    rates: dict[int, float] = {}
    for n in args.rules:
        rules_dir, sec_conf = write_rules(base, n)
        stream, _ = write_stream(base, n, args.events, args.types)
        timed([sys.executable, "-m", "correlator", "rules", "check", str(rules_dir)])  # warm the caches
        wall, cpu, made = replay(rules_dir, stream, base / "out.ndjson")
        rates[n] = args.events / wall
        line = (
            f"{n:>6} rules  correlator {args.events / wall:>9,.0f} events/s "
            f"({wall:.2f} s wall, {args.events / cpu:,.0f}/s of CPU)  out {dict(sorted(made.items()))}"
        )
        if have_sec and n <= args.sec_max_rules:
            small, small_log = write_stream(base, n, args.sec_events, args.types)
            c_wall, _, c_made = replay(rules_dir, small, base / "out-small.ndjson")
            s_wall, s_cpu, s_made = sec(sec_conf, small_log, base / "sec.out")
            same = "same outputs" if s_made == c_made else f"OUTPUTS DIFFER: correlator {c_made} SEC {s_made}"
            line += (
                f"\n{'':>13}on {args.sec_events:,} events: SEC {args.sec_events / s_wall:>9,.0f} events/s "
                f"({s_wall:.2f} s wall, {s_cpu:.2f} s CPU), correlator {args.sec_events / c_wall:,.0f} events/s: "
                f"{s_wall / c_wall:.1f}x SEC; {same}"
            )
        elif have_sec:
            line += f"\n{'':>13}SEC not run above {args.sec_max_rules:,} rules (--sec-max-rules)"
        print(line, flush=True)
    if len(rates) > 1:
        lo, hi = min(rates), max(rates)
        print(f"{lo:,} -> {hi:,} rules: {rates[lo] / rates[hi]:.2f}x slower (parse cache warm)")
        # A first run on new rule files reads every file's YAML: the same two runs without the cache.
        cold = {}
        os.environ["CORRELATOR_CACHE_DIR"] = ""  # the children's (child_env copies os.environ)
        try:
            for n in (lo, hi):
                wall, _, _ = replay(
                    base / f"rules-{n}", base / f"stream-{n}-{args.events}.ndjson", base / "out.ndjson"
                )
                cold[n] = args.events / wall
        finally:
            del os.environ["CORRELATOR_CACHE_DIR"]
        print(
            f"{lo:,} -> {hi:,} rules without the parse cache: {cold[lo]:,.0f} -> {cold[hi]:,.0f} events/s, "
            f"{cold[lo] / cold[hi]:.2f}x slower"
        )


def bench_load(base: Path, n: int) -> None:
    """Cold (no parse cache), a first start with an empty cache (it writes it), a warm start."""
    rules_dir, _ = write_rules(base, n)
    cmd = [sys.executable, __file__, "--child-load", str(rules_dir)]
    cache = base / "parse-cache"
    os.environ["CORRELATOR_CACHE_DIR"] = ""  # the children's (child_env copies os.environ)
    timed(cmd)  # byte-code caches
    runs = []
    for label, where in (("no cache", ""), ("empty cache", str(cache)), ("warm cache", str(cache))):
        os.environ["CORRELATOR_CACHE_DIR"] = where
        runs.append(f"{label + ':':<13} {timed(cmd)[2].stdout.decode().strip()}")
    del os.environ["CORRELATOR_CACHE_DIR"]
    print(f"\n## load {n:,} rules ({n // PER_FILE} files)\n" + "\n".join(runs), flush=True)


def child_load(rules_dir: Path) -> None:
    from correlator.rules.loader import load_rules

    gc.collect()
    base_rss = _rss()
    began, cpu = time.perf_counter(), time.process_time()
    rs = load_rules(rules_dir)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    peak = _rss("VmHWM:")  # not ru_maxrss: Linux carries the parent's peak over fork and exec
    gc.collect()
    kept = _rss() - base_rss
    print(
        f"{len(rs.rules):,} rules loaded in {wall:.2f} s wall ({cpu:.2f} s CPU); process peak RSS "
        f"{peak / 2**20:.0f} MiB ({(peak - base_rss) / 2**20:.0f} MiB above the process before loading), "
        f"{kept / 2**20:.0f} MiB kept"
    )


def bench_reload(base: Path) -> None:
    rules_dir, _ = write_rules(base, 100 * PER_FILE)
    _, _, done = timed([sys.executable, __file__, "--child-reload", str(rules_dir)])
    print(
        f"\n## reload after one file of 100 changed ({100 * PER_FILE:,} rules)\n{done.stdout.decode().strip()}"
    )


def child_reload(rules_dir: Path) -> None:
    asyncio.run(_reload(rules_dir))


async def _reload(rules_dir: Path) -> None:
    from correlator.clock import Clock
    from correlator.config import Config
    from correlator.event import Event, Severity
    from correlator.pipeline import StageContext
    from correlator.pipeline.assemble import build_pipeline
    from correlator.rules.errors import RuleErrors
    from correlator.rules.reload import ReloadResult, RulesHolder
    from correlator.rules.ruleset import RuleSet

    holder = RulesHolder(rules_dir)
    began = time.perf_counter()
    holder.load_initial()
    first = time.perf_counter() - began
    pipeline = build_pipeline(Config(rules_dir=rules_dir), holder)
    clock = Clock(T0)
    ctx = StageContext(clock, live=False)
    batch = [Event(f"e{i}", T0, T0, "bench", "h01", f"cpu.high.{i * 3}", Severity.INFO) for i in range(100)]
    await pipeline.run(batch, ctx)  # the stages take the rule set
    changed = rules_dir / "0050.yaml"
    changed.write_text(changed.read_text().replace("count: 3", "count: 4", 1))

    stall = 0.0
    done = asyncio.Event()

    async def watch() -> None:  # the longest the event loop went without running this task
        nonlocal stall
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.001)
            last = now

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.01)
    finish = holder._finish
    on_loop = 0.0

    def timed_finish(trigger: str, outcome: RuleSet | RuleErrors) -> ReloadResult:
        nonlocal on_loop  # the swap: what runs on the event loop
        t = time.perf_counter()
        r = finish(trigger, outcome)
        on_loop += time.perf_counter() - t
        return r

    holder._finish = timed_finish  # type: ignore[method-assign]
    began = time.perf_counter()
    result = await holder.reload("bench")
    total = time.perf_counter() - began
    t = time.perf_counter()
    await pipeline.run(batch, ctx)  # the first batch after: the stages take the new set (index, state)
    on_loop += time.perf_counter() - t
    done.set()
    await watcher
    assert result.ok, result.errors
    print(
        f"first load {first:.2f} s; reload {total * 1000:.0f} ms in all (files compiled: "
        f"{holder._cache.compiled} of 100), {on_loop * 1000:.0f} ms of it on the event loop "
        f"(swap + the stages taking the new set); longest event-loop stall meanwhile {stall * 1000:.0f} ms"
    )


def bench_rules_test() -> None:
    tests = sorted(str(p) for p in (REPO / "rules" / "tests").glob("*_test.yaml"))
    cmd = [sys.executable, "-m", "correlator", "rules", "test", *tests]
    timed(cmd)
    runs = [timed(cmd)[:2] for _ in range(5)]
    walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    print(
        f"\n## `correlator rules test rules/tests/*_test.yaml` ({len(tests)} files)\n"
        f"median {statistics.median(walls):.2f} s wall (best {min(walls):.2f}), "
        f"{statistics.median(cpus):.2f} s CPU, over 5 runs"
    )


def _rss(field: str = "VmRSS:") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--rules", default="10,100,1000,10000")
    p.add_argument("--types", type=int, default=20_000)
    p.add_argument("--sec-events", type=int, default=5_000)
    p.add_argument("--sec-max-rules", type=int, default=1000)
    p.add_argument("--load-rules", type=int, default=10_000)
    p.add_argument("--only", default="replay,load,reload,test")
    p.add_argument("--child-load", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-reload", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_load:
        child_load(args.child_load)
        return
    if args.child_reload:
        child_reload(args.child_reload)
        return
    args.rules = [int(x) for x in args.rules.split(",")]
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="rules-scale-") as tmp:
        base = Path(tmp)
        if "replay" in parts:
            bench_replay(base, args)
        if "load" in parts:
            bench_load(base, args.load_rules)
        if "reload" in parts:
            bench_reload(base)
        if "test" in parts:
            bench_rules_test()


if __name__ == "__main__":
    main()
