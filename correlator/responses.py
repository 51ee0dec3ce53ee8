"""Responses that correlation asks for and later stages carry out (the incident stage, notifiers).

Level-2 rules append these to `StageContext.responses`; the stage that owns a kind of response
consumes its own kind. Keeping them as plain data lets correlation be tested without incidents.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from correlator.event import Event


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and level 2 builds
# one of these per firing. Nothing hashes or changes a request once made: treat it as immutable.
@dataclass(slots=True)
class IncidentRequest:
    action: Literal["open", "update", "resolve"]
    key: str  # correlation key: one open incident per key
    event: Event  # the event that caused the request (timeline entry)
    rule: str  # name of the rule that asked
    title: str = ""
    description: str = ""
    impact: int | None = None  # 1 (high) .. 3 (low)
    urgency: int | None = None  # 1 (high) .. 3 (low)
    assignment_group: str | None = None
    major: bool = False


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    target: str  # name of a configured notification target
    event: Event
    rule: str
    body: bytes  # rendered from the rule's template


Response = IncidentRequest | NotifyRequest


def response_dict(r: Response) -> dict[str, Any]:
    """A response as a plain mapping (`rules test`, `rules explain`): its fields, `kind` = the class
    name, `event` named by id, type and host, a body as text."""
    d: dict[str, Any] = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    d["kind"] = type(r).__name__
    ev = r.event
    d["event"] = {"id": ev.id, "type": ev.type, "host": ev.host}
    if isinstance(r, NotifyRequest):
        d["body"] = r.body.decode(errors="replace")
    return d
