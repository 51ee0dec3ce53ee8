"""Datagrams the kernel dropped for a full receive buffer, before the listener could read them.

Linux counts them per socket in /proc/net/udp{,6} (last column, keyed by the socket's inode); the
UDP listeners (SNMP traps, syslog) poll that every few seconds into their dropped-messages counter
with reason "receive_buffer".
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def kernel_drops(inode: int) -> int | None:
    """The socket's drop counter, or None where the kernel does not expose it."""
    wanted = str(inode)
    for table in _TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] == wanted:
                return int(fields[-1])
    return None


async def watch(sock: socket.socket, interval: float, on_drops: Callable[[int], None]) -> None:
    """Until cancelled: every `interval` s, call on_drops(n) with the datagrams dropped since last time."""
    inode = socket_inode(sock)
    last = kernel_drops(inode)
    if last is None:
        return  # not Linux, or no /proc: nothing to watch
    while True:
        await asyncio.sleep(interval)
        now = kernel_drops(inode)
        if now is not None and now > last:
            on_drops(now - last)
            last = now
