"""GET /api/v1/rules (loaded rules with hit counts, last reload and its errors) and POST .../reload.

The reload call reloads every reload target (correlator/reloads.py): the services file and the change
calendar when configured, and the rules; their outcomes are shown beside the rules'.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from correlator.api.common import dumps_response
from correlator.api.openapi import operation
from correlator.event import iso
from correlator.reloads import Reloads
from correlator.rules.reload import RulesHolder
from correlator.rules.ruleset import LoadedRule
from correlator.rules.stats import STATS

RULES = web.AppKey("rules", RulesHolder)
RELOADS = web.AppKey("reloads", Reloads)

_ERROR_ITEM = {
    "type": "object",
    "properties": {
        "file": {"type": "string"},
        "line": {"type": "integer", "nullable": True, "description": "null where unknown (a missing file)"},
        "column": {"type": "integer", "nullable": True},
        "message": {"type": "string"},
        "text": {"type": "string", "description": "file:line:column: message"},
    },
}
_RELOAD_PROPERTIES: dict[str, Any] = {
    "ok": {"type": "boolean"},
    "trigger": {"type": "string", "description": "start, file change, SIGHUP or api"},
    "at": {"type": "string", "format": "date-time", "description": "when it was attempted (UTC)"},
    "rules": {"type": "integer", "description": "rules active after the attempt"},
    "errors": {"type": "array", "items": _ERROR_ITEM},
    "warnings": {
        "type": "array",
        "items": {"type": "string"},
        "description": "file:line:column: message, where the inventory or topology file disagrees with the"
        " service catalogue (availability.services_file); the load went on",
    },
}
_RELOAD = {"type": "object", "properties": _RELOAD_PROPERTIES}
_FILE_RELOAD_PROPERTIES: dict[str, Any] = {
    "ok": {"type": "boolean"},
    "trigger": {"type": "string", "description": "file change, SIGHUP or api"},
    "at": {"type": "string", "format": "date-time", "description": "when it was attempted (UTC)"},
    "file": {"type": "string"},
}
_CALENDAR = {
    "type": "object",
    "nullable": True,
    "description": "the last reload of the change calendar (docs/changes.md); absent without `changes.calendar`",
    "properties": {
        **_FILE_RELOAD_PROPERTIES,
        "windows": {"type": "integer", "description": "windows of the calendar serving after the attempt"},
        "withdrawn": {
            "type": "array",
            "items": {"type": "string"},
            "description": "not-yet-started occurrences cancelled because their window was removed or changed",
        },
        "errors": {"type": "array", "items": _ERROR_ITEM},
    },
}
_SERVICES = {
    "type": "object",
    "nullable": True,
    "description": "the last reload of the services file (availability.services_file, docs/metrics.md);"
    " absent without one",
    "properties": {
        **_FILE_RELOAD_PROPERTIES,
        "services": {"type": "integer", "description": "services of the catalogue serving after the attempt"},
        "added": {"type": "array", "items": {"type": "string"}},
        "removed": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": _ERROR_ITEM},
    },
}
_RULE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "description": {"type": "string"},
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "matches": {"type": "integer"},
        "dropped": {"type": "object", "additionalProperties": {"type": "integer"}},
        "errors": {"type": "integer"},
    },
}
_LISTING = {
    "type": "object",
    "properties": {
        "rules_dir": {"type": "string"},
        "reload_success": {"type": "boolean", "nullable": True},
        "last_reload": {**_RELOAD, "nullable": True},
        "errors": {"type": "array", "items": _ERROR_ITEM},
        "loaded_at": {
            "type": "string",
            "format": "date-time",
            "description": "when the active set was loaded (UTC)",
        },
        "files": {"type": "array", "items": {"type": "string"}},
        "inventory_hosts": {"type": "integer"},
        "rules": {"type": "array", "items": _RULE},
        "calendar": _CALENDAR,
        "services": _SERVICES,
    },
}


def add_routes(app: web.Application, holder: RulesHolder, reloads: Reloads) -> None:
    app[RULES] = holder
    app[RELOADS] = reloads
    app.router.add_get("/api/v1/rules", list_rules)
    app.router.add_post("/api/v1/rules/reload", reload_rules)


@operation(
    summary="Loaded rules with hit counts, and the last reload with its errors",
    role="viewer",
    tags=("rules",),
    responses={200: ("the active rule set", _LISTING)},
)
async def list_rules(request: web.Request) -> web.Response:
    return dumps_response(200, describe(request.app[RULES], request.app[RELOADS]))


_RELOADED = {
    "type": "object",
    "description": "`ok` and `errors` cover the rules, the services file and the calendar;"
    " `rules` counts the active rules",
    "properties": {
        **_RELOAD_PROPERTIES,
        "active_rules": {"type": "integer"},
        "calendar": _CALENDAR,
        "services": _SERVICES,
    },
}


@operation(
    summary="Reload the rule files, the services file and the change calendar: validate, then swap in;"
    " on errors keep the old",
    role="operator",
    tags=("rules",),
    responses={
        200: ("reloaded", _RELOADED),
        422: ("a file has errors; its previous version keeps serving", _RELOADED),
    },
)
async def reload_rules(request: web.Request) -> web.Response:
    holder = request.app[RULES]
    outcomes = await request.app[RELOADS].reload("api")
    docs: dict[str, dict[str, Any]] = {name: o.as_dict() for name, o in outcomes.items()}
    rules = docs.pop(holder.name)
    errors = [e for d in (rules, *docs.values()) for e in d["errors"]]
    ok = all(o.ok for o in outcomes.values())
    doc = {**rules, "active_rules": len(holder.current.rules), **docs, "ok": ok, "errors": errors}
    return dumps_response(200 if ok else 422, doc)


def describe(holder: RulesHolder, reloads: Reloads) -> dict[str, Any]:
    rs = holder.current
    last = holder.last
    others = {
        t.name: t.last.as_dict() if t.last is not None else None for t in reloads.targets if t is not holder
    }
    return {
        "rules_dir": str(holder.rules_dir),
        "reload_success": last.ok if last is not None else None,
        "last_reload": last.as_dict() if last is not None else None,
        "errors": [e.as_dict() for e in holder.errors],
        "loaded_at": iso(rs.loaded_at),
        "files": rs.files,
        "inventory_hosts": len(rs.inventory),
        "rules": [_rule(r) for r in rs.rules],
        **others,
    }


def _rule(r: LoadedRule) -> dict[str, Any]:
    c = STATS.counters(r.info.name)
    p = r.info.position
    return {
        "name": r.info.name,
        "kind": r.info.kind,
        "description": r.info.description,
        "file": p.file,
        "line": p.line,
        "column": p.column,
        "matches": c.matches,
        "dropped": dict(c.dropped),
        "errors": c.errors,
    }
