"""Webhook format converters and source settings, without HTTP: mappings and config errors."""

from __future__ import annotations

import pytest

from collectors.webhook import grafana, nagios, zabbix
from collectors.webhook.sources import parse_sources
from correlator.errors import ConfigError, FieldError
from correlator.event import Event


def one(results):
    assert len(results) == 1
    index, r = results[0]
    assert index == 0
    return r


def test_grafana_legacy_alerting_uses_tags_and_default_severity():
    conv = grafana.make({"format": "grafana", "default_severity": "major"}, "w")
    doc = {"ruleId": 3, "ruleName": "Disk", "state": "alerting", "tags": {"host": "db1"}, "message": "90%"}
    ev = one(conv(doc, "webhook:g", 5.0))
    assert isinstance(ev, Event)
    assert (ev.host, ev.type, ev.severity.value, ev.message) == ("db1", "Disk", "major", "90%")
    ok = one(conv({**doc, "state": "ok"}, "webhook:g", 6.0))
    assert ok.severity.value == "clear" and ok.fingerprint == ev.fingerprint
    with pytest.raises(FieldError):
        conv({"something": "else"}, "webhook:g", 1.0)


def test_zabbix_severity_by_name_and_custom_map():
    conv = zabbix.make({"format": "zabbix", "severity_map": {"High": "critical"}}, "w")
    base = {"host": "h", "event_name": "E", "event_status": "PROBLEM", "event_id": "1"}
    assert one(conv({**base, "event_severity": "Average"}, "s", 1.0)).severity.value == "minor"
    assert one(conv({**base, "event_severity": "High"}, "s", 1.0)).severity.value == "critical"
    err = one(conv({**base, "event_severity": "Catastrophic"}, "s", 1.0))
    assert isinstance(err, FieldError) and err.field == "event_severity"
    update = one(conv({**base, "event_status": "UPDATE", "event_nseverity": "5"}, "s", 1.0))
    first = one(conv({**base, "event_nseverity": "5"}, "s", 1.0))
    assert update.id != first.id and update.fingerprint == first.fingerprint


def test_icinga_acknowledgement_does_not_touch_the_problem():
    problem = {"notification_type": "Problem", "host": "h", "service": "disk", "state": "WARNING"}
    ack = {**problem, "notification_type": "Acknowledgement"}
    p = one(nagios.convert(problem, "s", 1.0))
    a = one(nagios.convert(ack, "s", 1.0))
    assert (p.type, p.severity.value) == ("nagios.service", "warning")
    assert (a.type, a.severity.value) == ("nagios.service.acknowledgement", "info")
    assert a.fingerprint != p.fingerprint
    bad = one(nagios.convert({**problem, "state": "MELTING"}, "s", 1.0))
    assert isinstance(bad, FieldError) and bad.field == "service_state"


@pytest.mark.parametrize(
    ("sources", "error"),
    [
        ({"a": {"format": "splunk"}}, r"sources\.a\.format': expected one of"),
        ({"a": {"format": "zabbix", "items": "$.x"}}, r"sources\.a\.items': unknown key"),
        ({"a b": {"format": "zabbix"}}, r"URL path part"),
        ({"a": {"format": "mapped", "fields": {"host": 3}}}, r"sources\.a\.fields\.host'"),
        ({"a": {"format": "alertmanager", "host_labels": "instance"}}, r"host_labels'"),
        ({"a": {"format": "nagios", "token": ""}}, r"sources\.a\.token'"),
    ],
)
def test_source_config_errors(sources, error):
    with pytest.raises(ConfigError, match=error):
        parse_sources(sources, "collectors.webhook.sources")


def test_grafana_legacy_payloads_with_unexpected_types_are_per_item_errors():
    conv = grafana.make({"format": "grafana"}, "w")
    base = {"ruleId": 3, "ruleName": "Disk", "state": "alerting", "tags": {"host": "db1"}}
    for bad, field in [
        ({"state": ["alerting"]}, "state"),  # unhashable: once a 500
        ({"state": {"a": 1}}, "state"),
        ({"tags": ["host", "db1"]}, "tags"),
        ({"tags": "host=db1"}, "tags"),
        ({"ruleName": {"x": 1}}, "ruleName"),
        ({"tags": {"host": "h\x00"}}, "host"),
    ]:
        err = one(conv({**base, **bad}, "webhook:g", 1.0))
        assert isinstance(err, FieldError) and err.field == field, (bad, err)
    odd = one(conv({**base, "evalMatches": "not a list", "tags": {"host": "x" * 1000}}, "webhook:g", 1.0))
    assert isinstance(odd, Event) and odd.host == "x" * 256  # odd but harmless: kept, bounded
    assert odd.attributes["evalMatches"] == "not a list"


def test_zabbix_numeric_severity_out_of_range_is_a_field_error():
    conv = zabbix.make({"format": "zabbix"}, "w")
    base = {"host": "h", "event_name": "E", "event_status": "PROBLEM"}
    for n in ("-1", "6", -1, 1e300, "²", [5]):
        err = one(conv({**base, "event_nseverity": n}, "s", 1.0))
        assert isinstance(err, FieldError) and err.field == "event_nseverity", n


@pytest.mark.parametrize(
    ("instance", "host"),
    [
        ("web-1:9100", "web-1"),
        ("web-1", "web-1"),
        ("web-1:", "web-1:"),
        ("[fd00::1]:9100", "[fd00::1]"),
        ("a:b:80", "a:b"),
        ("web-1:http", "web-1:http"),
        ("web-1:80\n", "web-1\n"),  # as the regex `:\d+$` did: `$` matches before a final newline
        ("web-1:\u0661\u0662", "web-1"),  # \d is any decimal digit
    ],
)
def test_alertmanager_strips_a_port_from_instance_only(instance, host):
    from collectors.webhook import alertmanager

    opts = alertmanager.parse_options({}, "x", "alertmanager")
    alert = {"status": "firing", "labels": {"alertname": "A", "instance": instance}}
    assert alertmanager.alert_event(alert, "webhook:am", 1000.0, opts, {}).host == host
    alert["labels"] = {"alertname": "A", "host": instance}
    assert alertmanager.alert_event(alert, "webhook:am", 1000.0, opts, {}).host == instance
