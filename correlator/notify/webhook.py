"""The generic webhook notifier: POSTs the incident as JSON, or a body of the operator's own.

`body` is a Jinja2 template (templates.py); `template` is the older `string.Template` form with
$fields, kept for existing configurations. Without either the body is {"kind": ..., "incident": {...}}.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from correlator.notify import targets as t
from correlator.notify.outbox import Endpoint
from correlator.notify.templates import Template, optional

KEYS = frozenset({"url", "template", "body", "content_type", "headers"})
DEFAULT_ON = ("open", "update", "resolve", "major")

TEMPLATE_FIELDS = (
    "id",
    "kind",
    "title",
    "description",
    "status",
    "priority",
    "severity",
    "host",
    "service",
    "category",
    "assignment_group",
    "assignee",
    "event_count",
    "escalation_level",
    "major",
    "opened_at",
    "key",
)


@dataclass(frozen=True)
class Webhook:
    content_type: str
    template: str | None  # string.Template
    body: Template | None  # Jinja2

    def render(self, kind: str, doc: dict[str, Any]) -> bytes:
        if self.body is not None:
            return self.body.render(kind, doc).encode()
        return substitute(self.template, self.content_type, kind, doc)

    def endpoint(self, target: t.NotifyTarget) -> Endpoint:
        return t.endpoint(target)


def build(spec: Mapping[str, Any], where: str) -> tuple[str, Webhook]:
    url = t.url(spec, where)
    template = spec.get("template")
    if template is not None and not isinstance(template, str):
        t.fail(spec, "template", f"{where}.template", "expected a string using $id, $title, ...")
    if template is not None and "body" in spec:
        t.fail(spec, "body", f"{where}.body", "set 'body' (Jinja2) or 'template' ($fields), not both")
    content_type = spec.get("content_type", "application/json")
    if not isinstance(content_type, str):
        t.fail(spec, "content_type", f"{where}.content_type", "expected a MIME type string")
    return url, Webhook(content_type, template, optional(spec, "body", where))


def substitute(template: str | None, content_type: str, kind: str, doc: dict[str, Any]) -> bytes:
    """The body from a `string.Template` with $fields, or the default JSON document."""
    if template is None:
        return orjson.dumps({"kind": kind, "incident": doc})
    escape = "json" in content_type
    values: dict[str, str] = {}
    for name in TEMPLATE_FIELDS:
        raw = kind if name == "kind" else doc.get(name)
        text = "" if raw is None else str(raw).lower() if isinstance(raw, bool) else str(raw)
        # Inside a JSON template the value sits between quotes the operator wrote: escape, no quotes.
        values[name] = orjson.dumps(text).decode()[1:-1] if escape else text
    return string.Template(template).safe_substitute(values).encode()
