#!/usr/bin/env python3
"""Create the secrets the shipped deployment files expect, each in its own file, with random values.

    python3 deploy/make-secrets.py                          # deploy/secrets/ for docker compose
    python3 deploy/make-secrets.py /etc/correlator/credentials   # systemd (LoadCredential=)

Existing files are kept (run it again after deleting one to rotate it). Nothing secret is printed:
the admin API token to hand to operators is in `api_token`. Python standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

MQTT_USER = "correlator"  # the correlator's user on the compose stack's Mosquitto


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "secrets"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    api_token = _keep(target / "api_token", lambda: secrets.token_urlsafe(32))
    grafana_token = _keep(target / "grafana_api_token", lambda: secrets.token_urlsafe(32))
    _keep(target / "api_tokens.yaml", lambda: _tokens_yaml(api_token, grafana_token))
    _keep(target / "ingest_token", lambda: secrets.token_urlsafe(32))
    _keep(target / "snmp_community", lambda: secrets.token_urlsafe(18))
    _keep(target / "grafana_admin_password", lambda: secrets.token_urlsafe(18))
    pg_password = _keep(target / "postgres_password", lambda: secrets.token_urlsafe(24))
    # The scale-out stack (deploy/cluster/, deploy/kubernetes/cluster.yaml): the NATS client token,
    # the same token as the NATS servers' authorization block, and the workers' PostgreSQL DSN.
    nats_token = _keep(target / "nats_token", lambda: secrets.token_urlsafe(32))
    _keep(target / "nats_auth.conf", lambda: f'authorization {{ token: "{nats_token}" }}')
    _keep(target / "postgres_dsn", lambda: f"postgresql://correlator:{pg_password}@postgres:5432/correlator")
    mqtt_password = _keep(target / "mqtt_password", lambda: secrets.token_urlsafe(24))
    _keep(target / "mosquitto_passwd", lambda: mosquitto_line(MQTT_USER, mqtt_password))
    print(f"secrets in {target}; the admin API token for operators is in {target / 'api_token'}")
    return 0


def mosquitto_line(user: str, password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file line (what `mosquitto_passwd` writes: PBKDF2-SHA512, 101 rounds)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _tokens_yaml(token: str, grafana_token: str) -> str:
    """The admin token for operators and a viewer token for Grafana's annotation queries."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    grafana = hashlib.sha256(grafana_token.encode()).hexdigest()
    return (
        "# http.tokens_file: SHA-256 digests only (docs/api.md)\n"
        f"admin: {{role: admin, sha256: {digest}}}\n"
        f"grafana: {{role: viewer, sha256: {grafana}}}"
    )


def _keep(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        return path.read_text().strip()
    value = make()
    # 0644 inside a 0700 directory: containers (other uids) read the bind-mounted file, others on the
    # host cannot reach it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


if __name__ == "__main__":
    sys.exit(main(sys.argv))
