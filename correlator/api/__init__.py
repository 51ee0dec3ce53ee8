"""The daemon's HTTP API (aiohttp): health, metrics and the REST endpoints under /api/v1."""
