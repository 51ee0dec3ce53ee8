"""POST /api/v1/webhooks/{source} against the real daemon: every format, auth, and bad input."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse

import orjson
import pytest

pytestmark = pytest.mark.integration

SOURCES = {
    "am": {"format": "alertmanager", "token": "am-token"},
    "graf": {"format": "grafana", "hmac_secret": "graf-key", "hmac_header": "X-Grafana-Alerting-Signature"},
    "zbx": {"format": "zabbix"},
    "nag": {"format": "nagios"},
    "custom": {
        "format": "mapped",
        "items": "$.data.alarms",
        "fields": {"host": "$.node", "type": "$.code", "severity": "$.prio", "message": "$.text"},
        "attributes": {"region": "$.where.region"},
        "severity_map": {"p1": "critical", "p3": "minor"},
        "defaults": {"type": "custom.alarm"},
    },
}

AM_FIRING = {
    "version": "4",
    "groupKey": '{}:{alertname="HighCPU"}',
    "status": "firing",
    "receiver": "correlator",
    "externalURL": "http://am.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "severity": "critical"},
            "annotations": {"summary": "CPU above 95% for 5m"},
            "startsAt": "2026-11-30T10:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom.example/graph",
            "fingerprint": "c0ffee1234",
        },
        {"status": "firing", "labels": {"instance": "no-name"}},
    ],
}


def wait_events(d, n: int) -> list[dict]:
    def enough() -> list[dict] | None:
        ev = d.events()
        return ev if len(ev) >= n else None

    events = d.wait_for(enough, what=f"{n} events")
    assert len(events) == n, events
    return events


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def test_alertmanager_payload_with_bearer_token(make_daemon):
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    assert d.post_json("/api/v1/webhooks/am", AM_FIRING)[0] == 401
    assert d.post_json("/api/v1/webhooks/am", AM_FIRING, {"Authorization": "Bearer nope"})[0] == 401
    status, doc = d.post_json("/api/v1/webhooks/am", AM_FIRING, {"Authorization": "Bearer am-token"})
    assert status == 400
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "labels.alertname")]
    assert len(doc["accepted"]) == 1
    resolved = {**AM_FIRING["alerts"][0], "status": "resolved", "endsAt": "2026-11-30T10:07:00Z"}
    body = {**AM_FIRING, "status": "resolved", "alerts": [resolved]}
    assert d.post_json("/api/v1/webhooks/am", body, {"Authorization": "Bearer am-token"})[0] == 202
    # Alertmanager re-sends after a failed delivery: stored once (same id).
    assert d.post_json("/api/v1/webhooks/am", body, {"Authorization": "Bearer am-token"})[0] == 202
    events = wait_events(d, 2)
    firing, clear = sorted(events, key=lambda e: e["time"])
    assert (firing["host"], firing["type"], firing["severity"]) == ("web-1", "HighCPU", "critical")
    assert firing["message"] == "CPU above 95% for 5m"
    assert firing["time"].startswith("2026-11-30T10:00:00.123456")
    assert firing["attributes"]["labels"]["instance"] == "web-1:9100"
    assert clear["severity"] == "clear" and clear["time"] == "2026-11-30T10:07:00Z"
    assert firing["fingerprint"] == clear["fingerprint"] == "alertmanager:c0ffee1234"
    unauthorized = {"source": "webhook:am", "reason": "unauthorized"}
    assert d.metric("correlator_events_rejected_total", unauthorized) == 2


def test_grafana_with_hmac_signature(make_daemon):
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    payload = {
        "receiver": "correlator",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "host": "db-2", "mountpoint": "/var"},
                "annotations": {"description": "92% used"},
                "startsAt": "2026-11-30T11:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "5a5a",
                "values": {"B": 92.1},
                "dashboardURL": "http://grafana/d/x",
            }
        ],
        "version": "1",
        "title": "[FIRING:1] DiskFull",
    }
    body = orjson.dumps(payload)
    h = {"Content-Type": "application/json"}
    assert d.request("POST", "/api/v1/webhooks/graf", body, h)[0] == 401
    bad = {**h, "X-Grafana-Alerting-Signature": sign("wrong", body)}
    assert d.request("POST", "/api/v1/webhooks/graf", body, bad)[0] == 401
    good = {**h, "X-Grafana-Alerting-Signature": sign("graf-key", body)}
    assert d.request("POST", "/api/v1/webhooks/graf", body, good)[0] == 202
    legacy = orjson.dumps({"ruleId": 7, "ruleName": "Ping loss", "state": "ok", "tags": {"host": "r1"}})
    good = {**h, "X-Grafana-Alerting-Signature": "sha256=" + sign("graf-key", legacy)}
    assert d.request("POST", "/api/v1/webhooks/graf", legacy, good)[0] == 202
    events = {e["host"]: e for e in wait_events(d, 2)}
    disk = events["db-2"]
    assert (disk["type"], disk["resource"], disk["severity"]) == ("DiskFull", "/var", "warning")
    assert disk["attributes"]["values"] == {"B": 92.1}
    assert events["r1"]["severity"] == "clear" and events["r1"]["type"] == "Ping loss"


def test_zabbix_problem_and_recovery_share_a_fingerprint(make_daemon):
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    problem = {
        "event_id": "9001",
        "event_name": "High CPU utilization on web-3",
        "event_status": "PROBLEM",
        "event_value": "1",
        "event_severity": "High",
        "event_nseverity": "4",
        "event_date": "2026.11.30",
        "event_time": "09:15:00",
        "host": "web-3",
        "trigger_id": "123",
        "trigger_name": "High CPU utilization",
    }
    recovery = {
        **problem,
        "event_status": "RESOLVED",
        "event_value": "0",
        "event_recovery_date": "2026.11.30",
        "event_recovery_time": "09:20:00",
    }
    assert d.post_json("/api/v1/webhooks/zbx", problem)[0] == 202
    assert d.post_json("/api/v1/webhooks/zbx", recovery)[0] == 202
    status, doc = d.post_json("/api/v1/webhooks/zbx", [{**problem, "event_nseverity": "9"}, {"host": "x"}])
    assert status == 400
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(0, "event_nseverity"), (1, "event_name")]
    events = sorted(wait_events(d, 2), key=lambda e: e["time"])
    assert [e["severity"] for e in events] == ["major", "clear"]
    assert [e["time"] for e in events] == ["2026-11-30T09:15:00Z", "2026-11-30T09:20:00Z"]
    assert events[0]["fingerprint"] == events[1]["fingerprint"] == "zabbix:123:web-3"


def test_nagios_json_and_form_notifications(make_daemon):
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    problem = {
        "notification_type": "PROBLEM",
        "host_name": "sw-9",
        "service_description": "PING",
        "service_state": "CRITICAL",
        "output": "PING CRITICAL - Packet loss = 100%",
        "timestamp": 1796029200,
    }
    assert d.post_json("/api/v1/webhooks/nag", problem)[0] == 202
    recovery = {**problem, "notification_type": "RECOVERY", "service_state": "OK"}
    form = urllib.parse.urlencode(recovery).encode()
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    assert d.request("POST", "/api/v1/webhooks/nag", form, h)[0] == 202
    host_down = {"notification_type": "PROBLEM", "host_name": "sw-10", "host_state": "DOWN", "output": "down"}
    assert d.post_json("/api/v1/webhooks/nag", host_down)[0] == 202
    events = wait_events(d, 3)
    ping = sorted((e for e in events if e["host"] == "sw-9"), key=lambda e: e["severity"] != "critical")
    assert [e["severity"] for e in ping] == ["critical", "clear"]
    assert ping[0]["fingerprint"] == ping[1]["fingerprint"]
    assert ping[0]["resource"] == "PING" and ping[0]["type"] == "nagios.service"
    assert ping[0]["time"] == "2026-11-30T09:00:00Z"
    down = next(e for e in events if e["host"] == "sw-10")
    assert (down["type"], down["severity"]) == ("nagios.host", "critical")


def test_timestamps_of_thousands_of_digits_are_field_errors(make_daemon):
    # int() refuses text of more than 4,300 digits: such a time is a bad field, not a 500
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    digits = "9" * 5000
    zabbix = [
        {"host": "h", "event_name": "x", "event_timestamp": digits},
        {"host": "h", "event_name": "x", "event_status": "RESOLVED", "event_recovery_timestamp": digits},
    ]
    status, doc = d.post_json("/api/v1/webhooks/zbx", zabbix)
    assert status == 400, doc
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [
        (0, "event_timestamp"),
        (1, "event_recovery_timestamp"),
    ]
    assert "out of range" in doc["errors"][0]["message"]
    nagios = {"notification_type": "PROBLEM", "host_name": "h", "host_state": "DOWN", "timestamp": digits}
    status, doc = d.post_json("/api/v1/webhooks/nag", nagios)
    assert status == 400 and [e["field"] for e in doc["errors"]] == ["timestamp"], doc
    form = urllib.parse.urlencode(nagios).encode()
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, raw = d.request("POST", "/api/v1/webhooks/nag", form, h)
    assert status == 400 and [e["field"] for e in orjson.loads(raw)["errors"]] == ["timestamp"]
    assert d.metric("correlator_events_rejected_total", {"source": "webhook:zbx", "reason": "invalid"}) == 2
    assert d.metric("correlator_events_rejected_total", {"source": "webhook:nag", "reason": "invalid"}) == 2
    # digits within int()'s reach still read as epoch seconds, leading zeros included
    ok = {**nagios, "timestamp": "0" * 5000 + "1796029200"}
    assert d.post_json("/api/v1/webhooks/nag", ok)[0] == 202
    assert wait_events(d, 1)[0]["time"] == "2026-11-30T09:00:00Z"


def test_mapped_format_reads_json_paths_from_config(make_daemon):
    d = make_daemon(collectors={"webhook": {"sources": SOURCES}})
    body = {
        "data": {
            "alarms": [
                {
                    "node": "olt-4",
                    "code": "LOS",
                    "prio": "P1",
                    "text": "loss of signal",
                    "where": {"region": "n"},
                },
                {"node": "olt-5", "prio": "p3"},
                {"code": "LOS"},
                {"node": "olt-6", "prio": "p9"},
            ]
        }
    }
    status, doc = d.post_json("/api/v1/webhooks/custom", body)
    assert status == 400
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(2, "host"), (3, "severity")]
    events = {e["host"]: e for e in wait_events(d, 2)}
    los = events["olt-4"]
    assert (los["type"], los["severity"], los["message"]) == ("LOS", "critical", "loss of signal")
    assert los["attributes"]["region"] == "n"
    assert (events["olt-5"]["type"], events["olt-5"]["severity"]) == ("custom.alarm", "minor")
    status, doc = d.post_json("/api/v1/webhooks/custom", {"data": {}})
    assert status == 400 and doc["field"] == "$.data.alarms"
    status, doc = d.post_json("/api/v1/webhooks/custom", {"data": {"alarms": [{"node": "n" * 257}]}})
    assert status == 400 and [(e["field"], e["reason"]) for e in doc["errors"]] == [("host", "too_large")]


def test_unknown_source_bad_json_media_type_and_size(make_daemon):
    d = make_daemon(http={"max_body_bytes": 10_000}, collectors={"webhook": {"sources": SOURCES}})
    status, doc = d.post_json("/api/v1/webhooks/nope", {})
    assert status == 404 and "no webhook source" in doc["error"]
    status, _, raw = d.request("POST", "/api/v1/webhooks/zbx", b"{oops", {"Content-Type": "application/json"})
    assert status == 400 and "malformed JSON" in orjson.loads(raw)["error"]
    status, _, _ = d.request("POST", "/api/v1/webhooks/zbx", b"a=b", {"Content-Type": "text/plain"})
    assert status == 415
    status, _ = d.post_json("/api/v1/webhooks/zbx", [{"host": "h" * 100}] * 200)
    assert status == 413
    status, doc = d.post_json("/api/v1/webhooks/am", {"alerts": "nope"}, {"Authorization": "Bearer am-token"})
    assert status == 400 and doc["field"] == "alerts"
    assert d.metric("correlator_events_rejected_total", {"source": "webhook:unknown"}) == 1
    assert d.get("/healthz")[0] == 200
