"""The web console: server-rendered pages over the incident, change, problem and availability
services, served by the daemon's HTTP server at `/` with the API's tokens and roles (docs/console.md).
"""

from correlator.console.routes import add_document, add_routes

__all__ = ["add_document", "add_routes"]
