"""Buffered socket reads for paho-mqtt: one recv() per 64 KiB instead of about three per message.

paho reads each packet with separate recv() calls for its header, length and body; at tens of
thousands of messages/s those system calls dominate. aiomqtt's reader callback keeps calling
paho while the socket reports `pending()` bytes (meant for TLS), so a plain TCP socket wrapped
here is drained from user space in one callback. TLS sockets are left alone.
"""

from __future__ import annotations

import socket
from typing import Any

READ_SIZE = 65536


class BufferedSocket:
    """Delegates everything to the socket except recv(), served from a read-ahead buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._data):
            data = self._sock.recv(READ_SIZE)  # BlockingIOError when empty, b"" at EOF
            if not data:
                return data
            self._data, self._pos = data, 0
        end = self._pos + bufsize
        out = self._data[self._pos : end]
        self._pos = min(end, len(self._data))
        return out

    def pending(self) -> int:
        return len(self._data) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def install(paho: Any) -> bool:
    """Make `paho` (a paho-mqtt 2 Client) read through BufferedSocket; False when not possible."""
    create = getattr(paho, "_create_socket", None)
    if create is None:
        return False

    def create_buffered() -> Any:
        sock = create()
        return BufferedSocket(sock) if type(sock) is socket.socket else sock

    paho._create_socket = create_buffered
    return True
