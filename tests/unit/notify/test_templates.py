"""Templates (Jinja2 in its sandbox) and routing by match: errors at config load name the target."""

from __future__ import annotations

import orjson
import pytest

from correlator.errors import ConfigError
from correlator.incidents.settings import parse_settings
from correlator.notify.incidents import render
from correlator.notify.templates import SAMPLE

URL = "http://127.0.0.1:1/hook"


def target(**spec):
    return parse_settings({"notify": {"chat": {"url": URL, **spec}}}).notify["chat"]


def test_conditions_and_the_json_filter():
    t = target(
        body='{"text": {{ (id ~ " " ~ title) | json }}, "page": {{ (priority in ["P1", "P2"]) | json }}'
        '{% if assignee %}, "who": {{ assignee | json }}{% endif %}}'
    )
    doc = {**SAMPLE, "title": 'Fibre "cut"\n<b>', "priority": "P2"}
    assert orjson.loads(render(t, "open", doc)) == {"text": 'INC-000001 Fibre "cut"\n<b>', "page": True}
    doc["assignee"] = "alice"
    assert orjson.loads(render(t, "open", doc))["who"] == "alice"


def test_text_is_not_html_escaped_and_kind_and_incident_are_there():
    t = target(body="{{ kind }}: {{ title }} & {{ incident.host }}", content_type="text/plain")
    assert render(t, "resolve", {**SAMPLE, "title": "a<b>"}) == b"resolve: a<b> & core-sw1"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{% if title %}open", r"'incidents.notify.chat.body': template error on line 1"),
        ("{{ title | nosuchfilter }}", r"'incidents.notify.chat.body': template error on line 1: .*nosuchfilter"),
        ("{{ incident.pop('title') }}", r"'incidents.notify.chat.body': template fails on a sample incident: "
                                        r"SecurityError"),
        ("{{ 1 / 0 }}", r"'incidents.notify.chat.body': template fails .*ZeroDivisionError"),
    ],
)  # fmt: skip
def test_template_errors_are_config_errors_naming_the_target(body, error):
    with pytest.raises(ConfigError, match=error):
        target(body=body)


def test_the_sandbox_hides_python_internals():
    t = target(
        body="[{{ title.__class__ }}{{ incident.__class__.__mro__ }}{{ '{0.__class__}'.format(title) }}]"
    )
    assert render(t, "open", SAMPLE) == b"[]"


def test_a_template_failing_at_send_time_still_sends_a_fallback():
    """Tried on a sample at load, a template can still fail on a real incident: the notice goes out."""
    t = target(body="{{ 10 // event_count }}")
    assert render(t, "open", {**SAMPLE, "event_count": 0}) == b"INC-000001 open: Link down on core-sw1"


def test_body_and_template_are_exclusive():
    with pytest.raises(ConfigError, match="not both"):
        target(body="{{ id }}", template="$id")


def test_routing_by_priority_service_and_group():
    t = target(match={"priority": ["P1", "P2"], "service": "dns", "assignment_group": ["noc", "net"]})
    doc = {**SAMPLE, "priority": "P2", "service": "dns", "assignment_group": "net"}
    assert t.wants("open", doc)
    assert not t.wants("open", {**doc, "priority": "P3"})
    assert not t.wants("open", {**doc, "service": "web"})
    assert not t.wants("open", {**doc, "assignment_group": None})
    assert not t.wants("close", doc)  # not in the default send_on
    assert target().wants("open", {})  # no match: everything


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"match": {"prio": ["P1"]}}, r"'incidents.notify.chat.match.prio': unknown field \(did you mean 'priority'"),
        ({"match": {"priority": []}}, r"match.priority': expected a value or a non-empty list"),
        ({"match": ["P1"]}, r"'incidents.notify.chat.match': expected a mapping"),
        ({"type": "sms"}, r"'incidents.notify.chat.type': expected one of webhook, slack, email, pagerduty"),
        ({"text": "x"}, r"'incidents.notify.chat.text': unknown key"),
    ],
)  # fmt: skip
def test_routing_and_type_errors(spec, error):
    with pytest.raises(ConfigError, match=error):
        target(**spec)
