"""Notifications from the real daemon: an incident becomes an alert in a real Alertmanager, kept firing
across a daemon restart and ended on resolve; a broken target stops the start, naming it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.support.alertmanager import Alertmanager, no_receiver
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


@pytest.fixture
def alertmanager(tmp_path) -> Iterator[Alertmanager]:
    (tmp_path / "am").mkdir()
    am = Alertmanager(tmp_path / "am", no_receiver("5m"))
    am.start()
    yield am
    am.stop()


def test_an_incident_is_an_alert_kept_firing_across_a_restart_and_ended_on_resolve(make_daemon, alertmanager):
    target = {"type": "alertmanager", "url": alertmanager.url, "resend": "300ms", "labels": {"team": "noc"}}
    d = make_daemon(incidents={"notify": {"am": target}})

    def alerts_when(ok: Callable[[list[dict]], bool], what: str) -> list[dict]:
        return d.wait_for(lambda: ok(a := alertmanager.alerts()) and a, timeout=30, what=what)

    status, doc = d.post_json(
        "/api/v1/incidents", {"title": "BGP session down", "host": "edge-1", "impact": 1}
    )
    assert status == 201
    [alert] = alerts_when(lambda a: len(a) == 1, "the incident as an alert")
    assert alert["labels"]["incident"] == doc["incident"]["id"] and alert["labels"]["team"] == "noc"
    assert alert["annotations"]["summary"] == "BGP session down"
    assert d.stop() == 0
    d.start()  # the open incident is taken up again: its alert keeps being re-sent
    alerts_when(
        lambda a: len(a) == 1 and a[0]["updatedAt"] > alert["updatedAt"], "a re-send after the restart"
    )
    assert d.post_json("/api/v1/incidents/1/resolve", {})[0] == 200
    d.wait_for(lambda: alertmanager.alerts() == [], timeout=30, what="the alert ended")
    # since the restart: at least one re-send and the resolve
    assert d.metric("correlator_incident_notifications_total", {"target": "am", "outcome": "sent"}) >= 2
    assert d.metric("correlator_incident_notify_targets", {"type": "alertmanager"}) == 1
