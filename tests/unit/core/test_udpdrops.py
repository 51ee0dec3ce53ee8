"""Kernel receive-buffer drops are read per socket from /proc/net/udp (Linux)."""

from __future__ import annotations

import socket
import sys

import pytest

from correlator.udpdrops import kernel_drops, socket_inode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux only")
def test_overflowing_a_tiny_receive_buffer_is_counted():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        inode = socket_inode(rx)
        assert kernel_drops(inode) == 0
        for _ in range(200):
            tx.sendto(b"x" * 500, rx.getsockname())
        assert kernel_drops(inode) > 0


def test_unknown_inode_gives_none():
    assert kernel_drops(-1) is None
