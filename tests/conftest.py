from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.postgres import pg_server

__all__ = ["pg_server"]  # one PostgreSQL per test session, for every module's pg_dsn


@pytest.fixture(scope="session", autouse=True)
def _rule_parse_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The rule parse cache goes to the session's temp dir, never to the user's ~/.cache; daemons
    and commands the tests start inherit it through the environment."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CORRELATOR_CACHE_DIR", str(tmp_path_factory.mktemp("rule-cache")))
    yield
    mp.undo()


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
