"""deploy/cluster/ and deploy/kubernetes/cluster.yaml: the scale-out stack's files agree with each
other and with the daemon (configuration valid for both roles, secrets mounted where it reads them,
NATS configuration accepted by a real nats-server, nothing published but the ingest port)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from correlator.api.auth import load_tokens
from correlator.api.exposure import check_exposure
from correlator.cluster.roles import prepare
from correlator.config import load_config
from tests.support.daemon import REPO, need_tool

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "cluster" / "docker-compose.yml"
K8S = DEPLOY / "kubernetes" / "cluster.yaml"


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets")
    subprocess.run(
        [sys.executable, str(DEPLOY / "make-secrets.py"), str(out)], check=True, capture_output=True
    )
    return out


def _config(text: str, secrets: Path, tmp: Path, role: str) -> Any:
    path = tmp / f"{role}.yaml"
    path.write_text(text.replace("/run/secrets/", f"{secrets}/"))
    config = load_config(path, {"cluster.role": role})
    return prepare(config)


def _k8s() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


@pytest.mark.parametrize("role", ["ingest", "worker"])
def test_the_cluster_configurations_are_valid_for_each_role(secrets_dir: Path, tmp_path: Path, role: str):
    [cm] = [d for d in _k8s() if d["kind"] == "ConfigMap"]
    for text in ((DEPLOY / "cluster" / "correlator.yaml").read_text(), cm["data"]["correlator.yaml"]):
        config = _config(text, secrets_dir, tmp_path, role)
        dsn = (secrets_dir / "postgres_dsn").read_text().strip()
        if role == "worker":  # a worker names itself to the database: its fence (docs/cluster.md)
            assert config.storage.dsn.startswith(f"{dsn}?application_name=cw%3A")
        else:
            assert config.storage.dsn == dsn
        assert config.cluster.replicas == 3 and config.cluster.token_file is not None
        auth = load_tokens(config.http.tokens, config.http.tokens_file)
        check_exposure(config, auth.enabled)  # 0.0.0.0 with tokens: accepted
        if role == "worker":
            assert all(c == {"enabled": False} for c in config.collectors.values())


def test_compose_mounts_every_secret_the_configuration_reads_and_publishes_only_ingest():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    text = (DEPLOY / "cluster" / "correlator.yaml").read_text()
    read = {
        line.split("/run/secrets/")[1].split()[0] for line in text.splitlines() if "/run/secrets/" in line
    }
    for name in ("ingest", "worker"):
        assert read <= set(services[name]["secrets"]), name
        assert services[name]["command"][-1] == name
    published = [s for s, spec in services.items() if spec.get("ports")]
    assert published == ["ingest"]
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("../secrets/")
    env = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")


def test_kubernetes_mounts_the_secrets_and_runs_both_roles():
    docs = _k8s()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"correlator-ingest", "correlator-worker"}
    for name, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["args"][-1] == name.removeprefix("correlator-")
        [secrets] = [v for v in spec["volumes"] if v["name"] == "secrets"]
        paths = {i["path"] for i in secrets["secret"]["items"]}
        assert {"api_tokens.yaml", "ingest_token", "nats_token", "postgres_dsn"} <= paths
        assert spec["securityContext"]["runAsNonRoot"] is True
    nats = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats")
    assert nats["spec"]["replicas"] == 3


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_nats_configuration_is_accepted_by_nats_server(tmp_path: Path, where: str):
    binary = need_tool("nats-server", "nats-server")
    (tmp_path / "config").mkdir()
    (tmp_path / "secrets").mkdir()
    if where == "compose":
        text = (DEPLOY / "cluster" / "nats.conf").read_text()
        (tmp_path / "config" / "auth.conf").write_text('authorization { token: "t" }')
    else:
        [cm] = [d for d in _k8s() if d["kind"] == "ConfigMap"]
        text = cm["data"]["nats.conf"]
        (tmp_path / "secrets" / "auth.conf").write_text('authorization { token: "t" }')
    (tmp_path / "config" / "nats.conf").write_text(text)
    env = {**os.environ, "SERVER_NAME": "n1"}
    res = subprocess.run(
        [binary, "-c", str(tmp_path / "config" / "nats.conf"), "-t"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_prepare_refuses_a_worker_without_postgresql(tmp_path: Path):
    from correlator.errors import ConfigError

    config = load_config(None, {"cluster.role": "worker"})
    with pytest.raises(ConfigError, match="needs the shared PostgreSQL"):
        prepare(config)
    config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, replicas=2))
    with pytest.raises(ConfigError, match="replicas"):
        prepare(config)
