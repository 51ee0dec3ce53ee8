"""Responses that correlation asks for and later stages carry out (the incident stage, notifiers).

Level-2 rules append these to `StageContext.responses`; the stage that owns a kind of response
consumes its own kind. Keeping them as plain data lets correlation be tested without incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from correlator.event import Event


@dataclass(frozen=True, slots=True)
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
