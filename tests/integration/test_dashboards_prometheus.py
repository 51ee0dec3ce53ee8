"""Every PromQL expression of the Grafana dashboards and Prometheus rules, run by a real Prometheus.

Debian's `prometheus` (127.0.0.1, free port, temp storage, 1 s scrapes) scrapes a real daemon that
was fed events over HTTP and telemetry through a real Mosquitto, so the availability and capacity
figures exist; `promtool check metrics`
checks the daemon's /metrics text.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemon import REPO, DaemonProcess, base_config, free_port, need_tool
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = REPO / "deploy" / "prometheus" / "correlator.rules.yml"

# Series that exist only after something went wrong, or only with a collector this test does not
# run; their expressions are checked to EXECUTE without error, not to return data.
EMPTY_WHEN_HEALTHY = {
    "correlator_stage_errors_total": "counted per stage on the first failed batch only",
    "correlator_snmp_dropped_total": "the SNMP collector is not enabled here (tests/integration/test_snmp_*)",
    "correlator_snmp_notifications_total": "the SNMP collector is not enabled here (tests/integration/test_snmp_*)",
    "correlator_mqtt_pushback_total": "counted only while the ingest queue is full",
    "correlator_correlation_bound_hits_total": "counted only when a level-2 rule reaches a state bound",
    "correlator_notifications_total": "no notify webhook target is configured here",
    "correlator_incident_notifications_total": "no incident webhook target is configured here",
}
RATE_INTERVAL = "30s"  # what Grafana's $__rate_interval becomes here (scrapes are 1 s apart)

SERVICES = """
cis: [core-sw1]
services:
  web-shop:
    target: 0.9995
    all_of:
      - fw1
      - any_of:
          - {ci: r1, resource: uplink-a}
          - {ci: r2, resource: uplink-b}
  dns:
    any_of: [dns1, dns2]
"""


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) for every target of every panel."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def rule_exprs() -> list[tuple[str, str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(RULES.name, r.get("alert") or r["record"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def promql(expr: str) -> str:
    """Grafana's variables as Grafana would expand them: the rate interval, and "All" (.*) for the rest."""
    return re.sub(r"\$[A-Za-z_]\w*", ".*", expr.replace("$__rate_interval", RATE_INTERVAL))


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, PromQL equivalent of its label_values(metric, label))."""
    out = []
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            m = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["definition"])
            assert m, f"{path.name}: variable {var['name']}: expected label_values(metric, label)"
            out.append((path.name, var["name"], f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


class Prometheus:
    def __init__(self, workdir: Path, target_port: int) -> None:
        binary = need_tool("prometheus", "prometheus")
        self.port = free_port()
        cfg = workdir / "prometheus.yml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {
                            "job_name": "correlator",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                        }
                    ],
                }
            )
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def wait(self, expr: str, timeout: float = 60.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                doc = self.query(expr)
                if doc.get("status") == "success" and doc["data"]["result"]:
                    return list(doc["data"]["result"])
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus: no result for {expr} in {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def feed(daemon: DaemonProcess) -> None:
    feed_availability(daemon)
    feed_capacity_and_incidents(daemon)


def feed_availability(daemon: DaemonProcess) -> None:
    # Availability is measured from when the daemon first tracked a service, so these events carry
    # no time (the time of receipt) and go in order: web-shop loses fw1 briefly (one outage), then
    # both redundant uplinks (an open outage); dns loses one of its two servers and stays up.
    steps: list[list[dict[str, Any]]] = [
        [{"host": "fw1", "type": "host.down", "severity": "critical"}],
        [{"host": "fw1", "type": "host.up", "severity": "info"}],
        [
            {"host": "r1", "type": "IF-MIB::linkDown", "severity": "major", "resource": "uplink-a"},
            {"host": "r2", "type": "IF-MIB::linkDown", "severity": "major", "resource": "uplink-b"},
            {"host": "dns1", "type": "heartbeat.missed", "severity": "critical"},
        ],
    ]
    sent = 0
    for events in steps:
        status, doc = daemon.post_json("/api/v1/events", events)
        assert status == 202, doc
        sent += len(events)
        daemon.wait_for(
            lambda n=sent: daemon.metric("correlator_events_processed_total") >= n, what="processed"
        )
        time.sleep(0.2)  # gives the outage a measurable length on the daemon's wall clock


def feed_capacity_and_incidents(daemon: DaemonProcess) -> None:
    now = time.time()
    events = []
    for i in range(6):  # a link filling 2 points an hour, one reading every 15 minutes
        t = now - (5 - i) * 900
        events.append(
            {
                "host": "r1",
                "type": "capacity.bandwidth_in",
                "resource": "ge-0/0/1",
                "time": t,
                "attributes": {"utilization_ratio": 0.60 + 0.005 * i},
            }
        )
        events.append(
            {
                "host": "srv1",
                "type": "capacity.disk",
                "resource": "/var",
                "time": t,
                "attributes": {"used": 40, "total": 100},
            }
        )
    events.append(
        {"host": "srv1", "type": "capacity.disk", "resource": "/tmp", "attributes": {"utilization_ratio": -1}}
    )
    status, doc = daemon.post_json("/api/v1/events", events)
    assert status == 202, doc
    status, _ = daemon.post_json("/api/v1/events", [{"host": "x"}])  # invalid: counted as refused
    assert status == 400
    # Incidents by hand (no tokens configured: the API is open on 127.0.0.1): one P1 acknowledged
    # and resolved (MTTA, MTTR), one P2 left open.
    status, doc = daemon.post_json("/api/v1/incidents", {"title": "core down", "impact": 1, "urgency": 1})
    assert status == 201, doc
    ident = doc["incident"]["id"]
    assert daemon.post_json(f"/api/v1/incidents/{ident}/ack", {"note": "looking"})[0] == 200
    assert daemon.post_json(f"/api/v1/incidents/{ident}/resolve", {"code": "fixed", "notes": "ok"})[0] == 200
    status, doc = daemon.post_json(
        "/api/v1/incidents", {"title": "ups on battery", "impact": 2, "urgency": 1}
    )
    assert status == 201, doc


def availability_config(work: Path) -> dict[str, Any]:
    (work / "services.yaml").write_text(SERVICES)
    return {
        # the shipped rules: their metrics have data, and availability sees their output
        "rules_dir": str(REPO / "rules"),
        "availability": {"services_file": str(work / "services.yaml"), "windows": ["1d", "7d", "30d"]},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Prometheus]]:
    need_tool("prometheus", "prometheus")
    work = tmp_path_factory.mktemp("stack")
    broker = Mosquitto.create(work / "mosquitto")
    broker.start()
    port = free_port()
    mqtt = {
        "brokers": [
            {"name": "lab", "host": "127.0.0.1", "port": broker.port, "client_id": "correlator-dash"}
        ],
        "subscriptions": [
            {
                "name": "pdu-load",
                "topic": "pdu/{host}/{resource}",
                "format": "text",
                "qos": 1,
                "telemetry": {"warning": 24, "critical": 30, "capacity": 32},
            }
        ],
    }
    cfg = base_config(
        work,
        port,
        collectors={"webhook": {}, "mqtt": mqtt},
        **availability_config(work),
        capacity={"trend_window": "1d"},
    )
    daemon = DaemonProcess(work, cfg, port)
    try:
        daemon.start()
    except BaseException:
        broker.stop()
        raise
    prom = Prometheus(work, port)
    try:
        feed(daemon)
        daemon.wait_for(
            lambda: daemon.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1, what="mqtt up"
        )
        broker.publish([("pdu/pdu-a/outlet-1", "12"), ("pdu/pdu-a/outlet-1", "26")])  # 26 A: a warning
        daemon.wait_for(
            lambda: daemon.metric("correlator_capacity_utilization_ratio", {"ci": "pdu-a"}) == 26 / 32,
            what="telemetry in capacity",
        )
        daemon.wait_for(
            lambda: daemon.metric("correlator_events_processed_total") >= 17, what="events processed"
        )
        # Enough scrapes for rate() over RATE_INTERVAL, and the recording rules evaluated once.
        prom.wait('count_over_time(up{job="correlator"}[1m]) >= 5')
        prom.wait("correlator:queue_fill:ratio")
        yield daemon, prom
    finally:
        prom.stop()
        daemon.stop()
        broker.stop()


def test_the_fed_events_give_the_expected_figures(stack: tuple[DaemonProcess, Prometheus]):
    daemon, _ = stack
    assert daemon.metric("correlator_service_up", {"service": "web-shop"}) == 0.0
    assert daemon.metric("correlator_service_up", {"service": "dns"}) == 1.0
    assert daemon.metric("correlator_ci_up", {"ci": "dns1"}) == 0.0
    assert daemon.metric("correlator_outages_total", {"service": "web-shop"}) == 2.0
    assert 0 < daemon.metric("correlator_availability_ratio", {"service": "web-shop", "window": "1d"}) < 1
    assert daemon.metric("correlator_capacity_utilization_ratio", {"resource": "/var"}) == 0.4
    seconds = daemon.metric("correlator_capacity_time_to_full_seconds", {"resource": "ge-0/0/1"})
    assert seconds == pytest.approx((1 - 0.625) / 0.02 * 3600, rel=0.01)


@pytest.mark.parametrize(("file", "title", "expr"), dashboard_exprs() + rule_exprs())
def test_expression_executes_and_returns_data(
    stack: tuple[DaemonProcess, Prometheus], file: str, title: str, expr: str
):
    _, prom = stack
    doc = prom.query(promql(expr))
    assert doc["status"] == "success", f"{file}: {title}: {expr}: {doc.get('error')}"
    if any(m in expr for m in EMPTY_WHEN_HEALTHY):
        return
    if file == RULES.name and not title.startswith("correlator:"):
        return  # an alert expression is empty while nothing is wrong, which is the point
    assert doc["data"]["result"], f"{file}: panel '{title}': no data for {expr}"


@pytest.mark.parametrize(("file", "name", "expr"), variable_queries())
def test_variables_have_values(stack: tuple[DaemonProcess, Prometheus], file: str, name: str, expr: str):
    _, prom = stack
    doc = prom.query(expr)
    assert doc["status"] == "success" and doc["data"]["result"], f"{file}: ${name} would offer nothing"


def test_promtool_check_metrics(stack: tuple[DaemonProcess, Prometheus]):
    daemon, _ = stack
    promtool = need_tool("promtool", "prometheus")
    _, _, body = daemon.request("GET", "/metrics")
    assert b"correlator_availability_ratio" in body and b"correlator_capacity_time_to_full_seconds" in body
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()


@pytest.fixture
def own_daemon(make_daemon: Callable[..., DaemonProcess], tmp_path: Path) -> DaemonProcess:
    """A daemon of the test's own, fed the availability events, for a test that restarts it or
    rewrites its services file: the shared stack stays as the other tests expect it, in any order."""
    daemon = make_daemon(**availability_config(tmp_path))
    feed_availability(daemon)
    # The rules' output reaches availability after the events count as processed: wait for it.
    daemon.wait_for(
        lambda: (
            daemon.metric("correlator_outages_total", {"service": "web-shop"}) == 2
            and daemon.metric("correlator_ci_up", {"ci": "dns1"}) == 0
        ),
        what="both web-shop outages and dns1 down",
    )
    return daemon


def test_figures_survive_a_restart(own_daemon: DaemonProcess):
    daemon = own_daemon
    names = ("correlator_outages_total", "correlator_service_up", "correlator_ci_up")
    before = {
        n: daemon.metric(n, {"service": "web-shop"} if "ci_up" not in n else {"ci": "dns1"}) for n in names
    }
    daemon.stop()
    daemon.start()
    after = {
        n: daemon.metric(n, {"service": "web-shop"} if "ci_up" not in n else {"ci": "dns1"}) for n in names
    }
    assert after == before


def test_the_services_file_reloads_on_sighup_and_a_broken_one_keeps_serving(own_daemon: DaemonProcess):
    daemon = own_daemon
    services = daemon.workdir / "services.yaml"
    assert daemon.proc is not None

    def body() -> str:
        return daemon.request("GET", "/metrics")[2].decode()

    outages = daemon.metric("correlator_outages_total", {"service": "web-shop"})
    # dns removed, ntp added: no restart
    services.write_text(
        SERVICES.replace("  dns:\n    any_of: [dns1, dns2]\n", "  ntp:\n    any_of: [ntp1]\n")
    )
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: 'correlator_service_up{service="ntp"} 1.0' in body(), what="ntp exported")
    assert 'service="dns"' not in body(), "the removed service's series are gone"
    assert daemon.metric("correlator_service_up", {"service": "web-shop"}) == 0.0  # its state kept
    assert daemon.metric("correlator_outages_total", {"service": "web-shop"}) == outages
    services_last = daemon.get("/api/v1/rules")[1]["services"]
    # the file watcher may have swapped it before the signal: whichever came second found no change
    assert services_last["ok"] and services_last["services"] == 2, services_last

    # A broken file: the reload API answers 422 with file:line; the last good catalogue serves
    services.write_text("services:\n  web-shop:\n    all_of: []\n")
    status, result = daemon.post_json("/api/v1/rules/reload", {})
    assert status == 422 and result["ok"] is False and result["services"]["ok"] is False, result
    [err] = result["services"]["errors"]
    assert err["text"] == f"{services}:3:13: 'all_of' must be a non-empty list of members", err
    assert err in result["errors"] and result["services"]["services"] == 2
    assert daemon.metric("correlator_services_reload_failures_total") >= 1
    assert daemon.metric("correlator_services_reload_failed") == 1
    assert 'correlator_service_up{service="ntp"} 1.0' in body()

    # Back to the first file: dns is exported again
    services.write_text(SERVICES)
    status, result = daemon.post_json("/api/v1/rules/reload", {})
    assert status == 200 and result["services"]["ok"], result
    daemon.wait_for(lambda: 'correlator_service_up{service="dns"}' in body(), what="dns back")
    assert daemon.metric("correlator_services_reload_failed") == 0
    # dns1 left the catalogue with dns: its down state was forgotten, it is up until it reports
    assert daemon.metric("correlator_ci_up", {"ci": "dns1"}) == 1.0


def test_docs_describe_every_exported_metric(stack: tuple[DaemonProcess, Prometheus]):
    from prometheus_client.parser import text_string_to_metric_families

    daemon, _ = stack
    _, _, body = daemon.request("GET", "/metrics")
    docs = (REPO / "docs" / "metrics.md").read_text()
    names = set()
    for fam in text_string_to_metric_families(body.decode()):
        if fam.name.startswith("correlator_") and not fam.name.endswith("_created"):
            names.add(fam.name + ("_total" if fam.type == "counter" else ""))
    missing = sorted(n for n in names if f"`{n}`" not in docs)
    assert not missing, f"docs/metrics.md does not describe {missing}"
