"""The route -> role table of docs/api.md ("Endpoints"), written out once so that lowering a role in
the code or in the docs, or serving a route without deciding its role, fails a test.

None is an open route, "webhook" a route whose handler checks its own ingest token.
"""

from __future__ import annotations

ROUTE_ROLES: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/api/v1/openapi.json"): None,
    ("POST", "/api/v1/events"): "webhook",
    ("POST", "/api/v1/webhooks/{source}"): "webhook",
    ("GET", "/api/v1/events"): "viewer",
    ("GET", "/api/v1/incidents"): "viewer",
    ("POST", "/api/v1/incidents"): "admin",
    ("GET", "/api/v1/incidents/{id}"): "viewer",
    ("PATCH", "/api/v1/incidents/{id}"): "admin",
    ("POST", "/api/v1/incidents/{id}/ack"): "operator",
    ("POST", "/api/v1/incidents/{id}/status"): "operator",
    ("POST", "/api/v1/incidents/{id}/assign"): "operator",
    ("POST", "/api/v1/incidents/{id}/comment"): "operator",
    ("POST", "/api/v1/incidents/{id}/resolve"): "operator",
    ("POST", "/api/v1/incidents/{id}/close"): "admin",
    ("POST", "/api/v1/incidents/{id}/reopen"): "admin",
    ("GET", "/api/v1/changes"): "viewer",
    ("POST", "/api/v1/changes"): "admin",
    ("GET", "/api/v1/changes/{id}"): "viewer",
    ("POST", "/api/v1/changes/{id}/approve"): "admin",
    ("POST", "/api/v1/changes/{id}/start"): "operator",
    ("POST", "/api/v1/changes/{id}/complete"): "operator",
    ("POST", "/api/v1/changes/{id}/fail"): "operator",
    ("POST", "/api/v1/changes/{id}/cancel"): "admin",
    ("GET", "/api/v1/problems"): "viewer",
    ("POST", "/api/v1/problems"): "admin",
    ("GET", "/api/v1/problems/trend"): "viewer",
    ("GET", "/api/v1/problems/{id}"): "viewer",
    ("POST", "/api/v1/problems/{id}/link"): "operator",
    ("POST", "/api/v1/problems/{id}/resolve"): "admin",
    ("GET", "/api/v1/known-errors"): "viewer",
    ("POST", "/api/v1/known-errors"): "admin",
    ("GET", "/api/v1/known-errors/{id}"): "viewer",
    ("POST", "/api/v1/known-errors/{id}/retire"): "admin",
    ("GET", "/api/v1/rules"): "viewer",
    ("POST", "/api/v1/rules/reload"): "operator",
    ("GET", "/api/v1/report"): "viewer",
    ("GET", "/api/v1/annotations"): "viewer",
}
