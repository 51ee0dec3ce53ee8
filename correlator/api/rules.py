"""GET /api/v1/rules (loaded rules with hit counts, last reload and its errors) and POST .../reload."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from correlator.api.common import dumps_response
from correlator.api.openapi import operation
from correlator.rules.reload import RulesHolder
from correlator.rules.ruleset import LoadedRule
from correlator.rules.stats import STATS

RULES = web.AppKey("rules", RulesHolder)


def add_routes(app: web.Application, holder: RulesHolder) -> None:
    app[RULES] = holder
    app.router.add_get("/api/v1/rules", list_rules)
    app.router.add_post("/api/v1/rules/reload", reload_rules)


@operation(
    summary="Loaded rules with their hit counts, the last reload and its errors",
    role="viewer",
    tags=("rules",),
    responses={200: ("the rule set", None)},
)
async def list_rules(request: web.Request) -> web.Response:
    return dumps_response(200, describe(request.app[RULES]))


@operation(
    summary="Reload the rule files now; on any error the previous set keeps serving",
    role="admin",
    tags=("rules",),
    responses={200: ("reloaded", None), 422: ("the errors, file:line:column; the old set serves", None)},
)
async def reload_rules(request: web.Request) -> web.Response:
    holder = request.app[RULES]
    result = await holder.reload("api")
    return dumps_response(
        200 if result.ok else 422, {**result.as_dict(), "active_rules": len(holder.current.rules)}
    )


def describe(holder: RulesHolder) -> dict[str, Any]:
    rs = holder.current
    last = holder.last
    return {
        "rules_dir": str(holder.rules_dir),
        "reload_success": last.ok if last is not None else None,
        "last_reload": last.as_dict() if last is not None else None,
        "errors": [e.as_dict() for e in holder.errors],
        "loaded_at": rs.loaded_at,
        "files": rs.files,
        "inventory_hosts": len(rs.inventory),
        "rules": [_rule(r) for r in rs.rules],
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
