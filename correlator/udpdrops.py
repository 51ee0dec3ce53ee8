"""UDP listeners (SNMP traps, syslog): binding, and the datagrams the kernel dropped for a full receive buffer, before the listener could read them.

Linux counts them per socket in /proc/net/udp{,6} (last column, keyed by the socket's inode); the
UDP listeners (SNMP traps, syslog) poll that every few seconds into their dropped-messages counter
with reason "receive_buffer".
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))
KERNEL_DROPS_INTERVAL = 5.0  # seconds between reads of the drop counter


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


@dataclass(frozen=True)
class Listening:
    transport: asyncio.DatagramTransport
    watcher: asyncio.Task[None]  # the drop counter's poller: cancel it on stop
    address: tuple[str, int]
    recv_buffer: int  # what the kernel granted (capped at net.core.rmem_max)

    def close(self) -> None:
        self.transport.close()
        self.watcher.cancel()

    def open(self) -> bool:
        return not self.transport.is_closing()


async def listen(
    protocol: asyncio.DatagramProtocol,
    address: tuple[str, int],
    recv_buffer_bytes: int,
    on_drops: Callable[[int], None],
    name: str,
) -> Listening:
    """Bind a UDP socket with a large receive buffer (a burst waits in the kernel while a journal
    commit runs), attach `protocol`, and watch the kernel's drop counter for it."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
    watcher = asyncio.create_task(watch(sock, KERNEL_DROPS_INTERVAL, on_drops), name=name)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return Listening(transport, watcher, sock.getsockname()[:2], granted)
