from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.postgres import pg_server

__all__ = ["pg_server"]  # one PostgreSQL per test session, for every module's pg_dsn


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """make_daemon(**config_sections) -> a started DaemonProcess; stopped after the test."""
    started: list[DaemonProcess] = []

    def factory(start: bool = True, **extra: Any) -> DaemonProcess:
        port = free_port()
        d = DaemonProcess(tmp_path, base_config(tmp_path, port, **extra), port)
        if start:
            d.start()
        started.append(d)
        return d

    yield factory
    for d in started:
        d.stop()
