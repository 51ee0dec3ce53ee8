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
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from correlator.api.auth import load_tokens
from correlator.api.exposure import check_exposure, is_loopback, missing_credentials
from correlator.availability import parse_services, parse_settings
from correlator.config import Config, load_config, parse_duration
from correlator.secretfile import read_secret
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
        "correlator_pipeline_stalled_seconds",
        "correlator_events_dead_lettered_total",
    ):
        assert needed in exprs or needed.split(" ")[0] in exprs, needed
    # The stall and the dead-letter path each have their alert, on the metric that says so.
    alerts = {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert "correlator_pipeline_stalled_seconds" in alerts["CorrelatorPipelineStalled"]
    assert "correlator_events_dead_lettered_total" in alerts["CorrelatorEventsDeadLettered"]
    # and promtool's unit tests (test_promtool_check_and_test_rules) make each of them fire.
    tested = (PROM / "tests" / "correlator.rules.test.yml").read_text()
    for name in ("CorrelatorPipelineStalled", "CorrelatorEventsDeadLettered"):
        assert f"alertname: {name}" in tested, name


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


def test_dashboards_annotate_incidents_and_changes_from_the_provisioned_api_datasource():
    """Each dashboard shows incidents (P1-P3) and changes as annotations: the Infinity data source
    provisioned with the viewer token Grafana is given, the endpoint's columns, Grafana's range."""
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "correlator.yml").read_text())
    [api] = ds["datasources"]
    assert api["type"] == "yesoreyeram-infinity-datasource" and api["url"] == "http://correlator:8080"
    assert api["jsonData"]["httpHeaderName1"] == "Authorization"
    assert api["secureJsonData"]["httpHeaderValue1"] == "Bearer $__file{/run/secrets/grafana_api_token}"
    grafana = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["grafana"]
    assert "grafana_api_token" in grafana["secrets"]
    assert "yesoreyeram-infinity-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    for path in DASHBOARDS:
        queries = [
            a
            for a in json.loads(path.read_text())["annotations"]["list"]
            if a["datasource"]["uid"] == api["uid"]
        ]
        kinds = {}
        for a in queries:
            t = a["target"]
            assert a["enable"] and t["url"] == "/api/v1/annotations" and t["format"] == "dataframe"
            params = {p["key"]: p["value"] for p in t["url_options"]["params"]}
            assert params["from"] == "${__from:date:iso}" and params["to"] == "${__to:date:iso}"
            assert [c["selector"] for c in t["columns"]] == ["time", "timeEnd", "title", "text", "tags"]
            kinds[params["kind"]] = params.get("priority")
        assert kinds == {"incidents": "P1,P2,P3", "changes": None}, path.name


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


def test_compose_config_is_valid_with_its_collectors(made_secrets: Path, tmp_path: Path):
    from collectors.mqtt.settings import parse_settings as parse_mqtt
    from collectors.snmp.settings import parse as parse_snmp

    cfg = with_secrets(DEPLOY / "correlator.compose.yaml", made_secrets, tmp_path)
    broker = parse_mqtt(cfg.collectors["mqtt"]).brokers[0]
    assert broker.host == "mosquitto" and broker.username == "correlator"
    assert broker.password == (made_secrets / "mqtt_password").read_text().strip()
    snmp = parse_snmp(cfg.collectors["snmp"])
    assert snmp.communities == ((made_secrets / "snmp_community").read_text().strip(),)
    assert "public" not in snmp.communities
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


# -- secure by default ---------------------------------------------------------------------------

SECRET_DIRS = ("/run/secrets/", "/run/credentials/correlator.service/")
SECRET_PATH = r"(?m)^[^#\n]*:\s*(/run/[\w./-]+)"  # a YAML value naming a file under /run


@pytest.fixture(scope="module")
def made_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `python3 deploy/make-secrets.py DIR` writes, as an operator would run it."""
    target = tmp_path_factory.mktemp("secrets")
    res = subprocess.run(
        [sys.executable, str(DEPLOY / "make-secrets.py"), str(target)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    for name in ("api_token", "ingest_token", "mqtt_password", "grafana_admin_password"):
        assert (target / name).read_text().strip() not in res.stdout  # nothing secret printed
    return target


def with_secrets(path: Path, secrets: Path, tmp: Path, text: str | None = None) -> Config:
    """The configuration with its secret directories pointed at `secrets`, as the deploy target mounts them."""
    text = path.read_text() if text is None else text
    for mount in SECRET_DIRS:
        text = text.replace(mount, f"{secrets}/")
    (tmp / path.name).write_text(text)
    return load_config(tmp / path.name)


def shipped_configs() -> dict[str, tuple[str, str]]:
    """name -> (configuration text, where the deploy target mounts its secrets)."""
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "correlator.yaml").read_text()) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "correlator-config"]
    return {
        "image": ((DEPLOY / "correlator.yaml").read_text(), "/run/secrets/"),
        "compose": ((DEPLOY / "correlator.compose.yaml").read_text(), "/run/secrets/"),
        "systemd": (
            (DEPLOY / "systemd" / "correlator.yaml").read_text(),
            "/run/credentials/correlator.service/",
        ),
        "kubernetes": (cm["data"]["correlator.yaml"], "/run/secrets/"),
    }


@pytest.mark.parametrize("name", ["image", "compose", "systemd", "kubernetes"])
def test_every_shipped_configuration_has_tokens_or_listens_on_loopback_only(
    name: str, made_secrets: Path, tmp_path: Path
):
    text, mount = shipped_configs()[name]
    cfg = load_config(_write(tmp_path / "raw.yaml", text))
    assert not cfg.http.allow_open
    host, _ = cfg.http.listen
    has_tokens = bool(cfg.http.tokens or cfg.http.tokens_file)
    assert is_loopback(host) or not missing_credentials(cfg, has_tokens), missing_credentials(cfg, has_tokens)
    check_exposure(cfg, has_tokens)  # what the daemon does first at start
    # Every secret the configuration names lives where its deploy target mounts secrets ...
    named = set(re.findall(SECRET_PATH, text))
    assert named and all(p.startswith(mount) for p in named), named
    # ... and the files make-secrets.py writes satisfy it: the tokens parse, the webhook token reads.
    resolved = with_secrets(tmp_path / f"{name}.yaml", made_secrets, tmp_path, text)
    auth = load_tokens(resolved.http.tokens, resolved.http.tokens_file)
    api_token = (made_secrets / "api_token").read_text().strip()
    assert auth.identify(f"Bearer {api_token}") is not None
    grafana = auth.identify(f"Bearer {(made_secrets / 'grafana_api_token').read_text().strip()}")
    assert grafana is not None and grafana.role == "viewer"  # annotations only: it reads, never acts
    webhook = resolved.collectors["webhook"]
    assert read_secret(webhook["token_file"]) == (made_secrets / "ingest_token").read_text().strip()


def test_each_deploy_target_mounts_the_secrets_its_configuration_reads():
    configs = shipped_configs()

    def wanted(name: str) -> set[str]:
        text, mount = configs[name]
        return {p.removeprefix(mount) for p in re.findall(SECRET_PATH, text)}

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert wanted("compose") == set(compose["services"]["correlator"]["secrets"])
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")  # written by make-secrets.py, ignored by git
    assert wanted("image") <= wanted("compose")

    unit = (DEPLOY / "systemd" / "correlator.service").read_text()
    credentials = dict(re.findall(r"^LoadCredential=([^:]+):(.+)$", unit, re.M))
    assert wanted("systemd") == set(credentials)
    assert all(p.startswith("/etc/correlator/credentials/") for p in credentials.values())

    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "correlator.yaml").read_text()) if d]
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = deploy["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if "secret" in v]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/run/secrets" and mount["readOnly"]
    assert wanted("kubernetes") == {item["path"] for item in volume["secret"]["items"]}
    assert not [d for d in docs if d["kind"] == "Secret"], "no secret values belong in the manifest"


def test_the_compose_stack_has_no_default_credentials_and_no_clashing_host_ports():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "Compose v2" in text  # `name:` and file secrets need it; the header says so
    grafana = services["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    pg = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in pg and pg["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    published = {p.split(":")[-2] for svc in services.values() for p in svc.get("ports", [])}
    assert not published & {"1883", "5432", "162"}, published
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert re.search(r"^password_file /run/secrets/mosquitto_passwd$", conf, re.M)
    assert "mosquitto_passwd" in services["mosquitto"]["secrets"]
    snmp = yaml.safe_load((DEPLOY / "correlator.compose.yaml").read_text())["collectors"]["snmp"]
    assert "communities" not in snmp and snmp["communities_file"] == "/run/secrets/snmp_community"


def test_mosquitto_accepts_the_generated_password_file_and_nobody_else(made_secrets: Path, tmp_path: Path):
    from tests.support.mosquitto import Mosquitto

    broker = Mosquitto.create(tmp_path, user=("correlator", "placeholder"))
    (tmp_path / "passwd").write_text((made_secrets / "mosquitto_passwd").read_text())
    broker.start()
    try:
        password = (made_secrets / "mqtt_password").read_text().strip()
        assert mqtt_connects(broker.port, "correlator", password)
        assert not mqtt_connects(broker.port, "correlator", "wrong-password")
        assert not mqtt_connects(broker.port, None, None)  # anonymous
    finally:
        broker.stop()


def mqtt_connects(port: int, user: str | None, password: str | None) -> bool:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    if user is not None:
        c.username_pw_set(user, password)
    answers: list[Any] = []
    c.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    c.connect("127.0.0.1", port)
    for _ in range(100):  # the broker's CONNACK arrives within a few loop turns
        c.loop(0.1)
        if answers:
            break
    c.disconnect()
    assert answers, "no CONNACK from the broker"
    return not answers[0].is_failure


def snmp_enabled(collectors: dict) -> bool:
    """SNMP runs unless its section says `enabled: false` (the section is merged with the defaults)."""
    return (collectors.get("snmp") or {}).get("enabled", True) is not False


def test_snmp_exposure_agrees_with_the_enabled_collectors():
    image = load_config(DEPLOY / "correlator.yaml")
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert exposed is not None
    assert snmp_enabled(image.collectors) == any(p.endswith("/udp") for p in exposed.group(1).split())
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "correlator.yaml").read_text()) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "correlator-config"]
    snmp_on = snmp_enabled(yaml.safe_load(cm["data"]["correlator.yaml"])["collectors"])
    for d in docs:
        if d["kind"] == "Deployment":
            ports = [p for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
        elif d["kind"] == "Service":
            ports = d["spec"]["ports"]
        else:
            continue
        assert snmp_on == any(p["protocol"] == "UDP" for p in ports), d["kind"]
    systemd = load_config(DEPLOY / "systemd" / "correlator.yaml")
    unit = (DEPLOY / "systemd" / "correlator.service").read_text()
    assert snmp_enabled(systemd.collectors) or not re.search(r"^AmbientCapabilities=", unit, re.M)


def test_the_systemd_steps_install_the_config_the_rules_and_the_credentials():
    ops = (REPO / "docs" / "operations.md").read_text()
    steps = ops[ops.index("### systemd") :]
    steps = steps[steps.index("```sh") : steps.index("```", steps.index("```sh") + 5)]
    assert "deploy/systemd/correlator.yaml" in steps and "/etc/correlator/correlator.yaml" in steps
    assert "rules/" in steps and "/etc/correlator/rules" in steps
    assert "make-secrets.py /etc/correlator/credentials" in steps


def test_the_docker_build_context_leaves_out_local_state():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "deploy/secrets"} <= set(ignored)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
