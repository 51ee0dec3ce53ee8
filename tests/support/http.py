"""A real aiohttp server on 127.0.0.1 for tests of outbound HTTP (webhook receivers)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from tests.support.daemon import free_port


@contextlib.asynccontextmanager
async def serve_posts(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str = "/{name}"
) -> AsyncIterator[str]:
    """`handler` answers POSTs to `path` on a free 127.0.0.1 port for the block; yields the base URL,
    http://127.0.0.1:PORT."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
