"""A bad services file or availability section stops `correlator run` with file:line, before any file is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("config", "services", "error"),
    [
        (
            "availability:\n  services_file: services.yaml\n",
            "services:\n  shop:\n    all_of: []\n",
            "services.yaml:3:13: 'all_of' must be a non-empty list of members",
        ),
        (
            "availability:\n  services_file: services.yaml\n  windows: [1d, soon]\n",
            "services: {}\n",
            "correlator.yaml:3:17: 'availability.windows': expected a duration",
        ),
        (
            "availability:\n  services_file: missing.yaml\n",
            "",
            "missing.yaml: no such services file",
        ),
        (
            "availability:\n  services_file: services.yaml\n  maintenance:\n"
            "    - {start: '2026-12-01T22:00:00Z', end: '2026-12-02T02:00:00Z', services: [web-shp]}\n",
            "services:\n  web-shop:\n    all_of: [fw1]\n",
            "correlator.yaml:4:7: 'availability.maintenance': unknown service 'web-shp' (not in services.yaml)",
        ),
        (
            "capacity:\n  trend_window: 0s\n",
            "",
            "correlator.yaml:2:3: 'capacity.trend_window': must be longer than 0s",
        ),
    ],
)
def test_bad_availability_settings_stop_start(tmp_path: Path, config: str, services: str, error: str):
    (tmp_path / "correlator.yaml").write_text(config)
    if services:
        (tmp_path / "services.yaml").write_text(services)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "correlator",
            "run",
            "--config",
            "correlator.yaml",
            "--data",
            "var",
            "--http",
            f"127.0.0.1:{free_port()}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2, res.stderr
    assert error in res.stderr
    assert not (tmp_path / "var").exists()
