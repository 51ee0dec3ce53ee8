"""A real Prometheus Alertmanager with the daemon as its webhook receiver: alerts posted to its API
arrive as events, and ending them arrives as clears with the same fingerprint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.alertmanager import Alertmanager, webhook_receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def alertmanager_for(tmp_path: Path) -> Iterator[object]:
    started: list[Alertmanager] = []

    def factory(receiver_url: str, token: str) -> Alertmanager:
        am = Alertmanager(tmp_path, webhook_receiver(receiver_url, token))
        am.start()
        started.append(am)
        return am

    yield factory
    for am in started:
        am.stop()


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def test_alerts_arrive_as_events_and_resolve_as_clears(make_daemon, alertmanager_for):
    d = make_daemon(collectors={"webhook": {"sources": {"am": {"format": "alertmanager", "token": "t0k"}}}})
    am = alertmanager_for(d.url + "/api/v1/webhooks/am", "t0k")
    start = datetime.now(UTC) - timedelta(minutes=1)
    alerts = [
        {
            "labels": {
                "alertname": "LinkDown",
                "instance": f"sw-{i}:9116",
                "ifName": "Gi0/1",
                "severity": "major",
            },
            "annotations": {"summary": f"Gi0/1 down on sw-{i}"},
            "startsAt": iso(start),
        }
        for i in range(2)
    ]
    am.post_alerts(alerts)
    firing = d.wait_for(lambda: (e := d.events()) and len(e) >= 2 and e, timeout=30, what="firing events")
    assert sorted(e["host"] for e in firing) == ["sw-0", "sw-1"]
    assert {(e["type"], e["resource"], e["severity"]) for e in firing} == {("LinkDown", "Gi0/1", "major")}
    assert firing[0]["attributes"]["receiver"] == "correlator"

    am.post_alerts([{**a, "endsAt": iso(datetime.now(UTC))} for a in alerts])

    def clears() -> list[dict]:
        return [e for e in d.events() if e["severity"] == "clear"]

    cleared = d.wait_for(lambda: len(clears()) >= 2 and clears(), timeout=30, what="clear events")
    assert {e["fingerprint"] for e in cleared} == {e["fingerprint"] for e in firing}
    assert d.metric("correlator_events_rejected_total", {"source": "webhook:am"}) == 0


def test_shipped_rules_open_an_incident_per_alert_and_resolve_it(make_daemon, alertmanager_for):
    """rules/35-alert-incidents.yaml through the real path: Alertmanager -> webhook -> rules -> incidents."""
    from tests.support.daemon import REPO

    d = make_daemon(
        rules_dir=str(REPO / "rules"),
        collectors={"webhook": {"sources": {"am": {"format": "alertmanager", "token": "t0k"}}}},
    )
    am = alertmanager_for(d.url + "/api/v1/webhooks/am", "t0k")
    start = datetime.now(UTC) - timedelta(minutes=1)
    alerts = [
        {
            "labels": {"alertname": "HighCPU", "instance": f"srv-{i}:9100", "severity": sev},
            "startsAt": iso(start),
        }
        for i, sev in enumerate(["critical", "warning"])
    ]
    am.post_alerts(alerts)

    def incidents() -> list[dict]:
        status, doc = d.get("/api/v1/incidents")
        assert status == 200, doc
        return sorted(doc["incidents"], key=lambda i: i["host"])

    opened = d.wait_for(lambda: len(incidents()) == 2 and incidents(), timeout=30, what="two incidents")
    assert [(i["host"], i["priority"], i["title"], i["status"]) for i in opened] == [
        ("srv-0", "P1", "HighCPU on srv-0", "new"),
        ("srv-1", "P4", "HighCPU on srv-1", "new"),
    ]
    firing = {e["host"]: e["fingerprint"] for e in d.events()}
    assert {i["key"] for i in opened} == {f"alert:{fp}" for fp in firing.values()}

    am.post_alerts([{**alerts[0], "endsAt": iso(datetime.now(UTC))}])  # only srv-0 resolves
    done = d.wait_for(
        lambda: (r := incidents()) and r[0]["status"] == "resolved" and r, timeout=30, what="srv-0 resolved"
    )
    assert done[1]["status"] == "new"
