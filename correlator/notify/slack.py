"""The Slack notifier: an incoming-webhook message with Block Kit blocks (Mattermost and Rocket.Chat
take the same `text`).

The message is a header (id, priority, title), the operator's `text` template or a default line,
and the incident's fields; `text` doubles as the notification's plain fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from correlator.notify import targets as t
from correlator.notify.outbox import Endpoint
from correlator.notify.templates import Template, optional

KEYS = frozenset({"url", "text", "headers"})
DEFAULT_ON = ("open", "update", "resolve", "major", "escalate")

_FIELDS = (("Status", "status"), ("Priority", "priority"), ("Severity", "severity"), ("Host", "host"),
           ("Service", "service"), ("Group", "assignment_group"))  # fmt: skip
_EMOJI = {"resolve": ":white_check_mark:", "close": ":white_check_mark:", "major": ":rotating_light:",
          "escalate": ":arrow_double_up:"}  # fmt: skip
HEADER_MAX = 150  # Slack's limit for a header block's text
SECTION_MAX = 3000  # and for a section's


@dataclass(frozen=True)
class Slack:
    text: Template | None

    def render(self, kind: str, doc: dict[str, Any]) -> bytes:
        return orjson.dumps(message(kind, doc, self.text))

    def endpoint(self, target: t.NotifyTarget) -> Endpoint:
        return t.endpoint(target)


def build(spec: Mapping[str, Any], where: str) -> tuple[str, Slack]:
    return t.url(spec, where), Slack(optional(spec, "text", where))


def message(kind: str, doc: dict[str, Any], text: Template | None) -> dict[str, Any]:
    if text is not None:  # the incident's words are escaped, the template's own markup is kept
        line = text.render(kind, {k: escape(v) if isinstance(v, str) else v for k, v in doc.items()})
    else:
        line = escape(default_text(kind, doc))
    header = f"{doc.get('id', '')} [{doc.get('priority', '')}] {doc.get('title', '')}"
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{escape(str(doc[name]))}"}
        for label, name in _FIELDS
        if doc.get(name) not in (None, "")
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:HEADER_MAX], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": line[:SECTION_MAX]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})  # Slack takes at most 10 fields
    opened = doc.get("opened_at")
    if opened:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"opened {opened}"}]})
    return {"text": line, "blocks": blocks}


def default_text(kind: str, doc: dict[str, Any]) -> str:
    emoji = _EMOJI.get(kind, ":warning:")
    where = f" on {doc['host']}" if doc.get("host") else ""
    return f"{emoji} {doc.get('id', '')} {kind}: {doc.get('title', '')}{where} is {doc.get('status', '')}"


def escape(text: str) -> str:
    """Slack mrkdwn reserves &, < and > (links, mentions): a title cannot @-mention the channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
