"""The offline commands load only what they need: no HTTP server, no collectors, no SNMP or MQTT."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("aiohttp", "collectors", "pysnmp", "aiomqtt", "apscheduler", "correlator.api", "correlator.daemon")

PROBE = """
import sys
from correlator.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {0} or m.startswith({1}))
print(repr(heavy))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "check", "rules"],
        ["rules", "test", "rules/tests/noise_test.yaml"],
        ["replay", "EVENTS", "--rules", "rules"],
    ],
)
def test_offline_commands_do_not_import_the_daemon_parts(args, tmp_path):
    assert imported(args, tmp_path, HEAVY) == []


ITSM = (
    "jinja2",
    "aiosmtplib",
    "dateutil",
    "correlator.incidents",
    "correlator.problems",
    "correlator.replay_noc",
)


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "check", "rules"],
        ["rules", "test", "rules/tests/noise_test.yaml"],  # asserts no incidents: none are run
        ["replay", "EVENTS", "--rules", "rules", "--events-only"],
    ],
)
def test_commands_without_incidents_do_not_import_the_itsm_parts(args, tmp_path):
    """Incidents, problems, notifications and their templates are imported only to be used."""
    assert imported(args, tmp_path, ITSM) == []


NOTIFIERS = ("jinja2", "aiosmtplib", "correlator.notify.templates", "correlator.notify.email")


def test_a_whole_replay_without_notify_targets_does_not_import_the_notifiers(tmp_path):
    """Incidents are run, but with no `incidents.notify` target no notifier (templates, mail) is loaded."""
    assert imported(["replay", "EVENTS", "--rules", "rules"], tmp_path, NOTIFIERS) == []


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "check", "rules"],
        ["replay", "EVENTS", "--rules", "rules", "--events-only"],
        ["replay", "EVENTS", "--rules", "rules"],
    ],
)
def test_without_a_services_file_the_availability_stage_is_not_imported(args, tmp_path):
    """The service catalogue reads the availability model; its stage and outage store only run
    with `availability.services_file`."""
    assert imported(args, tmp_path, ("correlator.availability.stage", "correlator.availability.db")) == []


STORES = (
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "correlator.store",
    "correlator.notify.store",
    "correlator.changes",
    "correlator.deadletter",
)


def test_an_events_only_replay_imports_no_store(tmp_path):
    """`replay --events-only` writes nothing and sends nothing: the notify stage is built, but its
    SQLite outbox is loaded only by a process that delivers; change records only with --changes."""
    assert imported(["replay", "EVENTS", "--rules", "rules", "--events-only"], tmp_path, STORES) == []


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "EVENTS", "--rules", "rules"],
        ["rules", "test", "rules/tests/incidents_test.yaml"],  # runs the incident service
    ],
)
def test_without_postgresql_its_driver_is_not_imported(args, tmp_path):
    """Which store errors are transient (store/faults.py) is asked without loading asyncpg."""
    assert imported(args, tmp_path, ("asyncpg",)) == []


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "EVENTS", "--rules", "rules"],  # runs the change service, without a calendar
        ["rules", "test", "rules/tests/incidents_test.yaml"],
    ],
)
def test_without_a_calendar_its_time_zones_and_rrules_are_not_imported(args, tmp_path):
    assert imported(args, tmp_path, ("zoneinfo", "dateutil")) == []


def test_rule_files_from_the_parse_cache_need_no_yaml_parser(tmp_path):
    """A replay whose rule files were all read before (rules/parsecache.py), with no topology,
    inventory or configuration file, never imports PyYAML (tests/conftest.py sets the cache)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(REPO / "rules" / "00-noise.yaml", rules)
    args = ["replay", "EVENTS", "--rules", str(rules), "--events-only"]
    imported(args, tmp_path, ())  # reads the YAML, fills the cache
    assert imported(args, tmp_path, ("yaml",)) == []


def imported(args: list[str], tmp_path: Path, names: tuple[str, ...]) -> list[str]:
    """Which of the packages `names` (or modules, when dotted) the command imported."""
    events = tmp_path / "events.ndjson"
    events.write_text('{"host": "sw1", "type": "IF-MIB::linkDown", "time": "2026-01-01T00:00:00Z"}\n')
    args = [str(events) if a == "EVENTS" else a for a in args]
    tops = {h for h in names if "." not in h}
    code = PROBE.format(repr(tops), repr(tuple(h for h in names if "." in h)))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(ast.literal_eval(done.stdout.strip().splitlines()[-1]))


EXPOSITION = ("http", "wsgiref", "urllib.request", "prometheus_client.exposition")


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "check", "rules"],
        ["rules", "test", "rules/tests/incidents_test.yaml"],
        ["rules", "explain", "EVENTS", "--rules", "rules"],
        ["replay", "EVENTS", "--rules", "rules", "--events-only"],
        ["replay", "EVENTS", "--rules", "rules"],
    ],
)
def test_offline_commands_do_not_import_the_metrics_exposition(args, tmp_path):
    """The metric objects are used, prometheus_client's HTTP exposition (http.server, wsgiref,
    urllib.request) is not: its package __init__ is deferred (cli.defer_prometheus_exposition)."""
    assert imported(args, tmp_path, EXPOSITION) == []


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "test", "rules/tests/incidents_test.yaml"],
        ["replay", "EVENTS", "--rules", "rules"],
    ],
)
def test_the_outbox_parses_http_dates_without_loading_email_at_start_up(args, tmp_path):
    """Only a Retry-After given as an HTTP date needs email.utils (with email, calendar, random)."""
    assert imported(args, tmp_path, ("email", "calendar")) == []


DEFERRED = """
import sys
from correlator.cli import defer_prometheus_exposition
defer_prometheus_exposition()
from correlator import metrics
metrics.EVENTS_PROCESSED.inc(3)
assert "prometheus_client.exposition" not in sys.modules
assert "http.server" not in sys.modules
import prometheus_client
from prometheus_client import REGISTRY, Counter, generate_latest
import prometheus_client.metrics, prometheus_client.registry
assert Counter is prometheus_client.metrics.Counter
assert REGISTRY is prometheus_client.registry.REGISTRY
print(generate_latest(REGISTRY).decode())
"""


def test_the_deferred_package_loads_whole_at_its_first_own_name():
    """Asking the package for a name of its own (not a submodule) runs its __init__ then: the
    exposition works, on the same registry and classes the metric objects were made with."""
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "correlator_events_processed_total 3.0" in done.stdout
    assert "python_gc_objects_collected_total" in done.stdout  # registered by the package __init__


def test_the_deferred_package_works_from_byte_code_alone(tmp_path):
    """A slimmed installation keeps only the .pyc files (compileall -b): the package's submodules
    are still told apart from its own names, and its __init__ asking for names it has not set yet
    does not recurse."""
    import compileall

    import prometheus_client

    copy = tmp_path / "site" / "prometheus_client"
    shutil.copytree(
        Path(prometheus_client.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    assert compileall.compile_dir(copy, legacy=True, quiet=1)
    for source in copy.rglob("*.py"):
        source.unlink()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "correlator_events_processed_total 3.0" in done.stdout


def test_every_command_is_found_by_its_name():
    """The CLI imports only the module of the command given: the table must name every command."""
    from correlator.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        only = next(a for a in build_parser(name)._actions if a.dest == "command")
        assert name in only.choices, (name, module)
