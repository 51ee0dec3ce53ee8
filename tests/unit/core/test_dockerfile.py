"""The Dockerfile cannot be built here (no Docker engine), so check what a linter would."""

from __future__ import annotations

import re
from pathlib import Path

from correlator.config import load_config

REPO = Path(__file__).resolve().parents[3]
TEXT = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [line.split()[0] for line in TEXT.splitlines() if line and not line.startswith((" ", "#"))]


def test_multi_stage_with_pinned_bases():
    froms = re.findall(r"^FROM (\S+)", TEXT, re.M)
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(":" in f and not f.endswith(":latest") for f in froms), froms


def test_runs_as_non_root_with_healthcheck():
    users = re.findall(r"^USER (\S+)", TEXT, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in INSTRUCTIONS
    assert "/healthz" in TEXT


def test_copied_paths_exist():
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", TEXT, re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"Dockerfile copies missing {path}"


def test_no_cache_and_exec_form():
    for line in re.findall(r"^RUN .*pip install.*$", TEXT, re.M):
        assert "--no-cache-dir" in line
    assert re.search(r"^ENTRYPOINT \[", TEXT, re.M) and re.search(r"^CMD \[", TEXT, re.M)


def test_image_config_is_valid():
    cfg = load_config(REPO / "deploy" / "correlator.yaml")
    assert cfg.http.listen == ("0.0.0.0", 8080)
