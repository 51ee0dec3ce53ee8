"""A throw-away PostgreSQL for the store tests: a server of our own (Debian `postgresql` binaries,
initdb + postgres on a free 127.0.0.1 port in a temporary directory, one per test session), else the
server named by CORRELATOR_TEST_PG, else a skip that says what to install."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import free_port

BINARIES = "/usr/lib/postgresql/*/bin"
# initdb and postgres refuse to run as root; as root the server runs as this user (the Debian
# package creates it).
SERVER_USER = "postgres"
# Trust: only loopback and a socket in the session's own directory reach the server.
INITDB = ("-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
# A disposable server that must start in a second or two: nothing is worth an fsync.
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


@dataclass
class PostgresServer:
    bindir: Path
    workdir: Path  # the data directory and the unix socket; removed at stop
    port: int
    user: str | None  # who runs the server when we are root; None: ourselves
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    @classmethod
    def create(cls, bindir: Path) -> PostgresServer:
        user = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root and there is no user {SERVER_USER!r} to run PostgreSQL"
                ) from None
            user = SERVER_USER
        # Not under pytest's basetemp: as root that is mode 0700, which the server's user cannot enter.
        workdir = Path(tempfile.mkdtemp(prefix="correlator-test-pg-"))
        if user is not None:
            shutil.chown(workdir, user, user)
        return cls(bindir, workdir, free_port(), user)

    def start(self, timeout: float = 30.0) -> None:
        data = self.workdir / "data"
        self._run("initdb", "-D", str(data), *INITDB)
        args = ["-D", str(data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.workdir)]
        for setting in SETTINGS:
            args += ["-c", setting]
        with (self.workdir / "server.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user is not None else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready on {self.port} after {timeout:.0f} s: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: the test sessions' clients are gone
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user is not None else None,
            cwd=self.workdir,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")


def find_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and postgres, or None."""
    found = [
        p
        for p in Path("/").glob(BINARIES.lstrip("/"))
        if (p / "initdb").exists() and (p / "postgres").exists()
    ]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base DSN (no database) of the session's PostgreSQL, started here when the binaries exist."""
    bindir = find_binaries()
    if bindir is not None:
        server = PostgresServer.create(bindir)
        try:
            server.start()
            yield server.dsn
        finally:
            server.stop()
        return
    external = os.environ.get("CORRELATOR_TEST_PG")
    if external:
        yield external.rstrip("/")
        return
    pytest.skip(
        f"no PostgreSQL server binaries in {BINARIES} (run `make test` as root, or apt-get install -y"
        " postgresql) and CORRELATOR_TEST_PG is not set to a server's DSN"
    )


async def _admin(base: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{base}/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(base: str, sql: str) -> None:
    """Run admin SQL on a loop of its own (the fixture may be asked for from inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(base, sql)).result()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: str) -> Iterator[str]:
    """DSN of a database created for this test session and dropped after it."""
    name = f"correlator_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _run(pg_server, f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as e:
        pytest.skip(f"PostgreSQL not answering at {pg_server} ({e}); check CORRELATOR_TEST_PG")
    yield f"{pg_server}/{name}"
    with contextlib.suppress(OSError, TimeoutError):
        _run(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_pg(dsn: str) -> None:
    """Drop every table so each test starts from an empty, unmigrated database."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
