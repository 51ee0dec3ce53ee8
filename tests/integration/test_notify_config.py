"""The daemon refuses to start on a broken notification target, naming it, before touching any state;
a secret in a file never appears in what it prints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.daemon import free_port

pytestmark = pytest.mark.integration


def test_a_template_error_and_a_missing_secret_stop_the_start_naming_the_target(tmp_path):
    key = tmp_path / "pd-key"
    key.write_text("R0UTINGKEY-never-printed\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"http: {{listen: '127.0.0.1:{free_port()}'}}\n"
        f"storage: {{data_dir: '{tmp_path / 'var'}'}}\n"
        "collectors: {snmp: {enabled: false}}\n"
        "incidents:\n"
        "  notify:\n"
        "    chat:\n"
        "      type: slack\n"
        "      url: http://127.0.0.1:1/hook\n"
        "      text: '{% if major %}MAJOR {{ title }}'\n"
    )
    r = subprocess.run([sys.executable, "-m", "correlator", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "'incidents.notify.chat.text': template error on line 1" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "var").exists()

    cfg.write_text(
        cfg.read_text().split("    chat:")[0]
        + f"    pager: {{type: pagerduty, routing_key_file: '{key}', summary: '{{{{ 1 / 0 }}}}'}}\n"
    )
    r = subprocess.run([sys.executable, "-m", "correlator", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "'incidents.notify.pager.summary': template fails" in r.stderr, r.stderr
    assert "R0UTINGKEY" not in r.stderr + r.stdout
