"""The Alertmanager output against a real Prometheus Alertmanager, read back through its API: an open
incident is a firing alert, re-sent while open, moved when its routing labels change, ended on resolve."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from correlator.event import Severity
from correlator.incidents.service import IncidentService
from tests.support.alertmanager import Alertmanager, no_receiver
from tests.unit.incidents.conftest import T0, request

pytestmark = pytest.mark.integration


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path, no_receiver("5m"))
    am.start()
    yield am
    am.stop()


@pytest.fixture
def open_service(service, alertmanager: Alertmanager):
    """open_service(**settings of the target) -> an incident service posting to the Alertmanager."""

    def factory(**target) -> Awaitable[IncidentService]:
        am = {
            "type": "alertmanager",
            "url": alertmanager.url,
            "labels": {"team": "noc"},
            "retry_delay": "50ms",
        }
        return service({"notify": {"am": {**am, **target}}})

    return factory


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def alerts_when(am: Alertmanager, ok, what: str) -> list[dict]:
    """Alertmanager's API until `ok(alerts)`: it applies a POST asynchronously, so poll briefly."""
    for _ in range(100):
        alerts = await asyncio.to_thread(am.alerts)
        if ok(alerts):
            return alerts
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: Alertmanager holds {alerts}")


async def test_open_incident_fires_is_resent_moves_and_ends(open_service, alertmanager):
    svc = await open_service(summary="{{ id }}: {{ title }}{% if major %} (major){% endif %}")
    [inc] = await svc.apply([request("open", T0, title="Fibre cut", severity=Severity.MAJOR)])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(10)
    [alert] = await alerts_when(alertmanager, lambda a: len(a) == 1, "the open incident")
    labels = alert["labels"]
    assert labels["alertname"] == "CorrelatorIncident" and labels["incident"] == "INC-000001"
    assert labels["host"] == "core-sw1" and labels["team"] == "noc" and labels["priority"] == inc.priority
    assert alert["annotations"]["summary"] == "INC-000001: Fibre cut"
    assert alert["status"]["state"] == "active"
    # Firing: Alertmanager ends it by itself after resolve_timeout unless it is re-sent.
    assert (when(alert["endsAt"]) - when(alert["updatedAt"])).total_seconds() > 240

    assert svc.notifier.resend_open("am") == 1
    await svc.notifier.drain(10)
    [again] = await alerts_when(
        alertmanager, lambda a: len(a) == 1 and a[0]["updatedAt"] != alert["updatedAt"], "the re-send"
    )
    assert again["fingerprint"] == alert["fingerprint"] and again["startsAt"] == alert["startsAt"]

    # A routing label changes: the alert under the old labels ends at once, the new one fires.
    await svc.act(inc.id, "assign", "alice", {"group": "dns-team"})
    await svc.notifier.drain(10)
    [moved] = await alerts_when(
        alertmanager, lambda a: [x["labels"].get("assignment_group") for x in a] == ["dns-team"], "the move"
    )
    assert moved["labels"]["incident"] == "INC-000001"

    await svc.act(inc.id, "resolve", "alice", {})
    await svc.notifier.drain(10)
    await alerts_when(alertmanager, lambda a: a == [], "the ended alert")
    assert svc.notifier.resend_open("am") == 0


async def test_resent_by_itself_and_after_a_restart(open_service, alertmanager):
    svc = await open_service(resend="200ms", send_on=["open", "resolve"])
    await svc.apply([request("open", T0, title="Fibre cut")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(10)
    [first] = await alerts_when(alertmanager, lambda a: len(a) == 1, "the open incident")
    await alerts_when(
        alertmanager, lambda a: a and a[0]["updatedAt"] != first["updatedAt"], "the timed re-send"
    )
    await svc.close()

    restarted = await open_service(resend="1h")
    assert restarted.notifier.resend_open("am") == 1  # still open after the restart: still re-sent


async def test_a_down_alertmanager_does_not_pile_up_resends(open_service, alertmanager):
    svc = await open_service(resend="1h", retries=100, retry_delay="1h")
    alertmanager.stop()
    await svc.apply([request("open", T0, key=f"k{i}", title=f"t{i}") for i in range(3)])
    await svc.settled()  # the notices go out once stored
    await asyncio.sleep(0)
    # The worker holds the first notice for its next retry; the other two still wait: no new round.
    assert svc.notifier.resend_open("am") == 0
