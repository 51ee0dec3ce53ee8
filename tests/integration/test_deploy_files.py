"""deploy/: Prometheus config and rules (promtool), Grafana provisioning, compose, systemd, Kubernetes.

No Docker, Grafana or Kubernetes here: check what their own validators would, plus the links between
the files (mounted paths exist, dashboards use the provisioned datasource, stop timeouts exceed
`shutdown_grace`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from correlator.availability import parse_services, parse_settings
from correlator.config import load_config, parse_duration
from correlator.yamlfile import load as load_yaml
from correlator.yamlfile import loads
from tests.support.daemon import REPO, need_tool

DEPLOY = REPO / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need_tool("promtool", "prometheus"), *args], capture_output=True, text=True)


def test_promtool_check_config(tmp_path: Path):
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    # In the container the rules are mounted under /etc/prometheus/rules (docker-compose.yml).
    assert cfg["rule_files"] == ["/etc/prometheus/rules/correlator.rules.yml"]
    cfg["rule_files"] = [str(PROM / "correlator.rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    res = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_check_and_test_rules():
    res = promtool("check", "rules", str(PROM / "correlator.rules.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    res = promtool("test", "rules", str(PROM / "tests" / "correlator.rules.test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_alerts_cover_the_daemons_health():
    doc = yaml.safe_load((PROM / "correlator.rules.yml").read_text())
    exprs = " ".join(r["expr"] for g in doc["groups"] for r in g["rules"])
    for needed in (
        "correlator_queue_depth_events",
        "correlator_events_rejected_total",
        "correlator_stage_errors_total",
        "correlator_rules_reload_success == 0",
        "correlator_collector_up == 0",
        'up{job="correlator"} == 0',
    ):
        assert needed in exprs or needed.split(" ")[0] in exprs, needed


def test_dashboards_are_valid_and_use_the_provisioned_datasource():
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    titles = set()
    dash_uids = set()
    assert {p.name for p in DASHBOARDS} == {
        "noc-overview.json",
        "availability.json",
        "capacity.json",
        "correlator-health.json",
    }
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] not in dash_uids and dash["title"] not in titles
        dash_uids.add(dash["uid"])
        titles.add(dash["title"])
        variables = {v["name"] for v in dash["templating"]["list"]}
        for v in dash["templating"]["list"]:
            assert v["datasource"]["uid"] in uids
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for p in dash["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{path.name}: '{p['title']}' wider than the grid"
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{path.name}: '{p['title']}' overlaps another panel"
            cells |= mine
            if p["type"] == "row":
                continue
            assert p["title"] and p.get("description"), (
                f"{path.name}: panel {p['id']} needs a title and description"
            )
            assert p["datasource"]["uid"] in uids, (
                f"{path.name}: '{p['title']}' uses an unprovisioned datasource"
            )
            assert p["targets"], f"{path.name}: '{p['title']}' has no query"
            for t in p["targets"]:
                assert t["datasource"]["uid"] in uids and t["expr"].strip()
                used = set(re.findall(r"\$([A-Za-z_]\w*)", t["expr"])) - {"__rate_interval"}
                assert used <= variables, (
                    f"{path.name}: '{p['title']}' uses undefined ${sorted(used - variables)}"
                )
            assert p["fieldConfig"]["defaults"]["unit"], f"{path.name}: '{p['title']}' has no unit"


def test_dashboard_provider_path_matches_the_compose_mount():
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "correlator.yml").read_text()
    )
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def test_compose_stack():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"correlator", "mosquitto", "prometheus", "grafana", "postgres"} <= set(services)
    assert services["postgres"]["profiles"] == ["postgres"]
    assert services["correlator"]["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / services["correlator"]["build"]["context"] / "Dockerfile").exists()
    grace = load_config(DEPLOY / "correlator.yaml").shutdown_grace
    assert parse_duration(services["correlator"]["stop_grace_period"]) > grace
    for name, svc in services.items():
        image = svc.get("image", "")
        assert name == "correlator" or (":" in image and not image.endswith(":latest")), image
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name} mounts missing {src}"


def test_compose_config_is_valid_with_its_collectors():
    from collectors.mqtt.settings import parse_settings as parse_mqtt
    from collectors.snmp.settings import parse as parse_snmp

    cfg = load_config(DEPLOY / "correlator.compose.yaml")
    assert parse_mqtt(cfg.collectors["mqtt"]).brokers[0].host == "mosquitto"
    parse_snmp(cfg.collectors["snmp"])
    parse_settings(cfg.availability)
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert (
        "./correlator.compose.yaml:/etc/correlator/correlator.yaml:ro"
        in compose["services"]["correlator"]["volumes"]
    )


def test_image_config_and_services_file_are_valid():
    cfg = load_config(DEPLOY / "correlator.yaml")
    settings = parse_settings(cfg.availability)
    assert settings.services_file == Path("/etc/correlator/services.yaml")
    parse_services(load_yaml(DEPLOY / "services.yaml"), "services.yaml")


def test_systemd_unit_is_hardened_and_waits_for_the_drain():
    unit = (DEPLOY / "systemd" / "correlator.service").read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert parse_duration(keys["TimeoutStopSec"]) > load_config(DEPLOY / "correlator.yaml").shutdown_grace
    assert keys["DynamicUser"] == "yes" and keys["ProtectSystem"] == "strict"
    assert keys["NoNewPrivileges"] == "yes" and keys["StateDirectory"] == "correlator"
    assert keys["ExecStart"].split()[0].startswith("/")
    assert keys["ExecReload"] == "/bin/kill -HUP $MAINPID"  # `systemctl reload` re-reads rules and calendar
    analyze = shutil.which("systemd-analyze")
    if analyze:  # not in every container; the checks above hold regardless
        res = subprocess.run(
            [analyze, "verify", str(DEPLOY / "systemd" / "correlator.service")],
            capture_output=True,
            text=True,
        )
        # The one complaint expected here: the venv of ExecStart is not installed on this machine.
        problems = [
            line for line in res.stderr.splitlines() if line.strip() and "is not executable" not in line
        ]
        assert not problems, res.stderr
        res = subprocess.run(
            [analyze, "security", "--offline=yes", str(DEPLOY / "systemd" / "correlator.service")],
            capture_output=True,
            text=True,
        )
        score = re.search(r"Overall exposure level for correlator.service: ([\d.]+)", res.stdout + res.stderr)
        assert score and float(score.group(1)) <= 2.0, res.stdout[-2000:]


def test_kubernetes_manifest(tmp_path: Path):
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "correlator.yaml").read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    assert {"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"} <= set(by_kind)
    config_maps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    assert "correlator-rules" in config_maps
    (tmp_path / "correlator.yaml").write_text(config_maps["correlator-config"]["data"]["correlator.yaml"])
    cfg = load_config(tmp_path / "correlator.yaml")
    parse_settings(cfg.availability)
    parse_services(loads(config_maps["correlator-config"]["data"]["services.yaml"]))
    (deploy,) = by_kind["Deployment"]
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    assert spec["terminationGracePeriodSeconds"] > cfg.shutdown_grace
    (c,) = spec["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(cfg.storage.data_dir) in mounts and str(cfg.rules_dir) in mounts
    assert "/etc/correlator/config/correlator.yaml" in c["args"]
    claim = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claim == {by_kind["PersistentVolumeClaim"][0]["metadata"]["name"]}
    image_uid = re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text())
    assert image_uid and spec["securityContext"]["runAsUser"] == int(image_uid.group(1))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_json_is_formatted(path: Path):
    text = path.read_text()
    assert json.dumps(json.loads(text), indent=2) + "\n" == text
