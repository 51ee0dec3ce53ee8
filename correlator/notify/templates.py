"""Notification templates: Jinja2 text rendered in its sandbox, compiled and tried at config load.

Used by every notifier for the text a person reads (subject, summary, message). The sandbox hides
Python internals (`__class__`, `mro`) and refuses changes to the incident document, so a template in
the configuration can neither reach Python nor spoil another target's notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jinja2
import orjson
from jinja2.sandbox import ImmutableSandboxedEnvironment

from correlator.errors import ConfigError
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)

MAX_OUTPUT = 256 * 1024  # a larger rendered text is cut: a loop in a template must not fill the outbox


def _json(value: Any) -> str:
    """`{{ title | json }}`: the value as a JSON literal, quotes included (safe inside a JSON body)."""
    return orjson.dumps(value, default=str).decode()


def _environment() -> ImmutableSandboxedEnvironment:
    # Immutable: the incident document is shared by every target's template, none may change it.
    # Autoescape off: the output is text, JSON or Slack mrkdwn, never HTML; `json` escapes for JSON.
    env = ImmutableSandboxedEnvironment(
        autoescape=False, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True
    )
    env.filters["json"] = _json
    return env


_ENV = _environment()

# A made-up incident the templates are tried on at load, so a wrong filter or a bad call shows then.
SAMPLE: dict[str, Any] = {
    "id": "INC-000001",
    "kind": "open",
    "title": "Link down on core-sw1",
    "description": "ifOperStatus down",
    "status": "open",
    "priority": "P1",
    "severity": "critical",
    "host": "core-sw1",
    "service": "backbone",
    "category": "network",
    "assignment_group": "noc",
    "assignee": None,
    "event_count": 3,
    "escalation_level": 0,
    "major": False,
    "opened_at": "2026-01-01T00:00:00Z",
    "key": "core-sw1/link",
}


@dataclass(frozen=True)
class Template:
    """One compiled template and where it came from (for error messages)."""

    where: str  # incidents.notify.<target>.<key>
    compiled: jinja2.Template

    def render(self, kind: str, doc: dict[str, Any]) -> str:
        """The text for one notice. A failure renders a short fallback and is logged, never raised:
        the incident change is saved already and its notice must still go out."""
        try:
            text = self.compiled.render(context(kind, doc))
        except Exception as e:
            _limited.warning(self.where, "%s: template failed (%s: %s)", self.where, type(e).__name__, e)
            return f"{doc.get('id', '')} {kind}: {doc.get('title', '')}"
        return text[:MAX_OUTPUT]


def context(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What a template sees: every incident field by name, `kind`, and the whole `incident`."""
    return {**doc, "kind": kind, "incident": doc}


def compile_template(source: Any, where: str) -> Template:
    """Compile and try `source` on a sample incident; errors name the setting and the template line."""
    if not isinstance(source, str):
        raise ConfigError(f"'{where}': expected a template string like '{{{{ id }}}} {{{{ title }}}}'")
    try:
        t = Template(where, _ENV.from_string(source))
        t.compiled.render(context("open", SAMPLE))
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"'{where}': template error on line {e.lineno}: {e.message}") from None
    except Exception as e:
        raise ConfigError(
            f"'{where}': template fails on a sample incident: {type(e).__name__}: {e}"
        ) from None
    return t


def optional(spec: Any, key: str, where: str) -> Template | None:
    """The template under `key` of a target's settings, compiled, or None when it is not set."""
    source = spec.get(key)
    return None if source is None else compile_template(source, f"{where}.{key}")
