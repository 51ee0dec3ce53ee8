"""Request and response shapes of /api/v1/incidents: JSON schemas for the OpenAPI document and
the body validation that enforces the same field kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from correlator import door
from correlator.errors import FieldError
from correlator.incidents.model import PRIORITIES, Status


def field_schema(kind: str) -> dict[str, Any]:
    schemas: dict[str, dict[str, Any]] = {
        "str": {"type": "string", "maxLength": 256},
        "text": {"type": "string", "maxLength": 16384},
        "ref": {"type": "string", "nullable": True, "maxLength": 256},
        "level": {"type": "integer", "minimum": 1, "maximum": 3},
        "bool": {"type": "boolean"},
    }
    return schemas[kind]


_TIME = {"type": "string", "format": "date-time", "nullable": True}
INCIDENT: dict[str, Any] = {
    "type": "object",
    "description": "An incident (docs/incidents.md); times are ISO 8601 UTC",
    "properties": {
        "id": {"type": "string", "example": "INC-000123"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "host": {"type": "string"},
        "service": {"type": "string"},
        "category": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "impact": {"type": "integer", "minimum": 1, "maximum": 3},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 3},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "severity": {"type": "string"},
        "assignment_group": {"type": "string"},
        "assignee": {"type": "string"},
        "key": {"type": "string", "nullable": True},
        "rule": {"type": "string"},
        "event_count": {"type": "integer"},
        "linked_events": {"type": "integer"},
        "major": {"type": "boolean"},
        "escalation_level": {"type": "integer"},
        "reopen_count": {"type": "integer"},
        "resolution_code": {"type": "string"},
        "resolution_notes": {"type": "string"},
        "problem_id": {"type": "string", "nullable": True},
        "change_id": {"type": "string", "nullable": True},
        "known_error_id": {"type": "string", "nullable": True},
        "workaround": {"type": "string"},
        **{
            name: _TIME
            for name in (
                "opened_at",
                "first_occurrence",
                "last_occurrence",
                "updated_at",
                "acknowledged_at",
                "resolved_at",
                "closed_at",
                "reopened_at",
                "next_escalation_at",
                "close_at",
            )
        },
    },
}
TIMELINE_ENTRY = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "description": "token name, rule:<name>, system or anonymous"},
        "action": {"type": "string", "example": "ack"},
        "detail": {"type": "object"},
    },
}


async def read_fields(
    request: web.Request,
    fields: Mapping[str, Any],
    required: tuple[str, ...] = (),
    optional_body: bool = False,
    check: Callable[[str, Any, Any], Any] | None = None,
) -> dict[str, Any]:
    """The request's JSON object, each known field checked by its kind (`check`, default
    check_field); raises FieldError naming the field."""
    check = check or check_field
    raw = await request.read()
    if not raw.strip() and optional_body:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad("", f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise bad("", "the body must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in doc.items():
        kind = fields.get(key)
        if kind is None:
            raise bad(key, f"unknown field; known: {', '.join(fields)}")
        out[key] = check(key, kind, value)
    for key in required:
        if key not in out or out[key] in ("", None):
            raise bad(key, "is required")
    return out


def check_field(key: str, kind: str, value: Any) -> Any:
    if kind in ("str", "text"):
        limit = 256 if kind == "str" else 16384
        if not isinstance(value, str) or len(value) > limit:
            raise bad(key, f"must be a string of at most {limit} characters")
        door.check_text(key, value)  # no NUL or lone surrogate (PostgreSQL text refuses both)
    elif kind == "ref":
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 256):
            raise bad(key, "must be a non-empty string of at most 256 characters, or null")
        if value is not None:
            door.check_text(key, value)
    elif kind == "level":
        # type(), not isinstance or `in`: True and 1.0 equal 1 but would reach the priority matrix
        if type(value) is not int or value not in (1, 2, 3):
            raise bad(key, "must be 1 (high), 2 or 3 (low)")
    elif kind == "bool" and not isinstance(value, bool):
        raise bad(key, "must be true or false")
    return value


def bad(field: str, message: str) -> FieldError:
    return FieldError(field, message)
