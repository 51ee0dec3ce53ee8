"""Threads a failed open must not leave behind: aiosqlite runs each connection on a thread that is
not a daemon, so one left open keeps the interpreter from exiting (a daemon that never ends)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def no_thread_left(timeout: float = 5.0) -> AsyncIterator[None]:
    """Fails when a thread started in the block is still alive `timeout` s after it (a closed
    connection's thread ends a moment after its close returns, so this polls)."""
    before = set(threading.enumerate())
    yield
    deadline = asyncio.get_running_loop().time() + timeout
    while left := [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        assert asyncio.get_running_loop().time() < deadline, f"threads left running: {left}"
        await asyncio.sleep(0.01)
