"""HTTP workers own the public port: while one is connected only workers accept there, every route
still answers on it (passed through to the daemon), the daemon takes the port back while none is
connected, and the frames' channel refuses and counts what is not a worker's."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import os
import re
import signal
import socket
import struct
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from correlator.workerlink import BATCH, HEADER, HELLO
from tests.integration.test_durability import ndjson
from tests.support.daemon import DaemonProcess, alive, child_pids, pid_holding

pytestmark = pytest.mark.integration

TOKEN = "admin-token-of-the-test"
TOKENS = {"noc": {"role": "admin", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def connected(d: DaemonProcess, n: int) -> list[int]:
    """Until n workers run and are connected to the daemon's channel (they own the port then)."""
    assert d.proc is not None
    pid = d.proc.pid
    d.wait_for(lambda: d.metric("correlator_http_workers_connected") == n, 20, f"{n} workers connected")
    return d.wait_for(lambda: len(pids := child_pids(pid)) == n and pids, 20, f"{n} http workers")  # type: ignore[no-any-return]


def holder_of_new_connection(d: DaemonProcess) -> int:
    client = socket.create_connection(("127.0.0.1", d.port))
    try:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # in hand, not finished
        return d.wait_for(lambda: pid_holding(client), 5, "the connection's process")  # type: ignore[no-any-return]
    finally:
        client.close()


def test_only_workers_accept_and_every_route_answers_on_the_port(make_daemon):
    d = make_daemon(http={"workers": 2, "tokens": TOKENS})
    workers = connected(d, 2)
    assert d.proc is not None
    holders = {holder_of_new_connection(d) for _ in range(30)}
    assert holders <= set(workers) and d.proc.pid not in holders
    # Pass-through: queries, /metrics, /readyz and the console, with the same authentication.
    status, _, body = d.request("POST", "/api/v1/events", ndjson("p", 5), NDJSON)
    assert status == 202, body
    assert d.request("GET", "/api/v1/events?limit=1")[0] == 401
    assert d.request("GET", "/api/v1/events?limit=1", headers={"Authorization": "Bearer wrong"})[0] == 401
    d.wait_for(
        lambda: (
            len(d.request("GET", "/api/v1/events?type=burst", headers=BEARER)[2]) > 50
            and b'"p-4"' in d.request("GET", "/api/v1/events?type=burst", headers=BEARER)[2]
        ),
        what="the events through a worker, queried through a worker",
    )
    assert d.request("GET", "/readyz")[0] == 200
    status, headers, body = d.request("GET", "/signin")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<form" in body
    status, _, body = d.request("GET", "/metrics")
    assert status == 200 and b"correlator_http_workers_connected 2.0" in body


async def test_sigkill_of_the_only_worker_mid_load_loses_nothing_and_the_port_stays_open(make_daemon):
    d = make_daemon(http={"workers": 1})
    [worker] = connected(d, 1)
    acked: list[str] = []
    others: list[object] = []
    stop = asyncio.Event()

    async def client(c: int, session: aiohttp.ClientSession) -> None:
        await post_batches(d, session, f"c{c}", acked, others, stop)

    async def until(count: int, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(acked) < count:
            assert asyncio.get_running_loop().time() < deadline, (
                f"{len(acked)} acknowledged, {len(others)} not"
            )
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.create_task(client(c, session)) for c in range(6)]
        try:
            await load_through_a_kill(d, worker, until, lambda: len(acked))
        finally:
            stop.set()
            await asyncio.gather(*clients)
    assert not alive(worker)
    assert d.metric("correlator_http_worker_restarts_total") == 1
    assert len(others) < 50  # only the requests in hand on the killed worker's connections
    # Every acknowledged event is stored, once.
    stored = d.wait_for(
        lambda: (
            d.metric("correlator_queue_depth_events") == 0
            and len(ids := [e["id"] for e in d.events("type=burst")]) >= len(acked)
            and ids
        ),
        30,
        "the acknowledged events stored",
    )
    assert set(acked) <= set(stored) and len(stored) == len(set(stored))
    # The replacement owns the port again.
    assert {holder_of_new_connection(d) for _ in range(10)} <= set(child_pids(d.proc.pid))


async def load_through_a_kill(
    d: DaemonProcess, worker: int, until: Callable[[int, float], Awaitable[None]], acked: Callable[[], int]
) -> None:
    """While clients post: SIGKILL the only worker; the port must keep answering."""
    await until(3000, 30)
    os.kill(worker, signal.SIGKILL)
    killed_at = acked()
    assert d.proc is not None
    # No worker is connected (the replacement starts after 0.5 s and takes a second or two to
    # connect): a new connection is the daemon's own.
    assert await asyncio.to_thread(holder_of_new_connection, d) == d.proc.pid
    # The daemon took the port back at once: load goes on while the worker is replaced.
    await until(killed_at + 3000, 10)
    await asyncio.to_thread(connected, d, 1)


async def post_batches(
    d: DaemonProcess,
    session: aiohttp.ClientSession,
    prefix: str,
    acked: list[str],
    others: list[object],
    stop: asyncio.Event,
    catch: tuple[type[BaseException], ...] = (aiohttp.ClientError,),
) -> None:
    """Post batches of 50 until `stop`; acknowledged ids to `acked`, anything else to `others`
    (status, Retry-After, body), which sets `stop` when `catch` is empty."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            async with session.post(
                d.url + "/api/v1/events", data=ndjson(f"{prefix}-{n}", 50), headers=NDJSON
            ) as r:
                if r.status == 202:
                    acked.extend((await r.json())["ids"])
                    continue
                others.append((r.status, r.headers.get("Retry-After"), await r.read()))
        except catch as e:  # a connection the killed worker held
            others.append(e)
        if not catch:
            stop.set()


def _refused(d: DaemonProcess, reason: str) -> float:
    return d.metric("correlator_http_worker_frames_refused_total", {"reason": reason})


def _closed_by_daemon(conn: socket.socket) -> bool:
    conn.settimeout(10)
    try:
        return conn.recv(64) == b""
    except ConnectionResetError:
        return True


def test_frames_not_from_a_worker_are_refused_and_counted(make_daemon):
    d = make_daemon(http={"workers": 1})
    connected(d, 1)
    path = str(d.workdir / "var" / "http-frames.sock")
    assert os.stat(path).st_mode & 0o077 == 0  # no other user may even connect
    tries = [
        # HTTP on the wrong socket: its first bytes read as a length of 1.1 GB
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 100, "too_large"),
        (b"\x00\x00\x00\x04" + b"\xff" * 50, "unauthenticated"),  # a small frame of no known kind
        (HEADER.pack(6, 0, HELLO) + b"secret", "unauthenticated"),  # a wrong secret
        (HEADER.pack(3, 0, BATCH) + b"abc", "unauthenticated"),  # a batch before any hello
        (HEADER.pack(0xFFFFFFF0, 0, HELLO), "too_large"),  # 4 GiB announced: refused before reading
    ]
    for data, reason in tries:
        before = _refused(d, reason)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        conn.sendall(data)
        assert _closed_by_daemon(conn)
        conn.close()
        d.wait_for(lambda r=reason, b=before: _refused(d, r) == b + 1, 10, f"{reason} counted")
    # Half a header, then silence: closed after the hello deadline, counted.
    before = _refused(d, "unauthenticated")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    conn.sendall(struct.pack("!I", 10))
    assert _closed_by_daemon(conn)
    conn.close()
    d.wait_for(lambda: _refused(d, "unauthenticated") == before + 1, 10, "the silent one counted")
    # The daemon and its worker go on.
    assert d.metric("correlator_http_workers_connected") == 1
    status, _, body = d.request("POST", "/api/v1/events", ndjson("after", 3), NDJSON)
    assert status == 202, body


async def test_a_full_queue_reaches_the_client_as_503_with_retry_after(make_daemon):
    d = make_daemon(http={"workers": 1}, queue={"max_events": 60, "retry_after": "3s"})
    connected(d, 1)
    acked: list[str] = []
    refusals: list[object] = []
    got_one = asyncio.Event()

    async def client(c: int, session: aiohttp.ClientSession) -> None:
        await post_batches(d, session, f"q{c}", acked, refusals, got_one, catch=())

    async with aiohttp.ClientSession() as session:
        await asyncio.wait_for(asyncio.gather(*(client(c, session) for c in range(8))), 60)
    status, retry_after, body = refusals[0]  # type: ignore[misc]
    assert status == 503 and retry_after == "3" and b'"error"' in body
    d.wait_for(
        lambda: d.metric(
            "correlator_events_rejected_total", {"source": "webhook:generic", "reason": "queue_full"}
        ),
        10,
        "the refusal counted",
    )
    stored = d.wait_for(
        lambda: len(ids := {e["id"] for e in d.events("type=burst")}) >= len(acked) and ids,
        30,
        "the acknowledged events stored",
    )
    assert set(acked) <= stored


def test_a_connection_the_daemon_took_meanwhile_is_closed_once_a_worker_is_back(make_daemon):
    d = make_daemon(http={"workers": 1})
    [worker] = connected(d, 1)
    os.kill(worker, signal.SIGKILL)
    d.wait_for(lambda: not alive(worker), 10, "the worker gone")
    assert d.proc is not None
    client = socket.create_connection(("127.0.0.1", d.port))
    client.settimeout(10)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    client.sendall(request)
    assert d.wait_for(lambda: pid_holding(client), 5, "the connection's process") == d.proc.pid
    first = client.recv(4096)
    assert b" 200 " in first and b"Connection: close" not in first  # kept alive
    connected(d, 1)
    client.sendall(request)  # the same connection, now that a worker accepts again
    second = client.recv(4096)
    assert b" 200 " in second and b"Connection: close" in second
    assert client.recv(4096) == b""  # closed by the daemon: the client reconnects, to the worker
    client.close()


def test_a_cookie_one_client_got_through_a_worker_never_reaches_another(make_daemon):
    d = make_daemon(http={"workers": 1, "tokens": TOKENS})
    connected(d, 1)
    # Client A signs in to the console through the worker: the daemon sets its session cookie.
    status, headers, body = d.request("GET", "/signin")
    assert status == 200
    nonce = headers["Set-Cookie"].split(";")[0]
    csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
    form = f"csrf={csrf}&token={TOKEN}&next=/incidents".encode()
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)  # no redirects followed
    conn.request(
        "POST", "/signin", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": nonce}
    )
    signed_in = conn.getresponse()
    assert signed_in.status == 303 and "correlator_session=" in (signed_in.getheader("Set-Cookie") or "")
    conn.close()
    # Client B, with no cookie, is not signed in (the worker keeps no cookies of its own).
    status, _, body = d.request("GET", "/incidents")
    assert status != 200 or b"Sign out" not in body
    status, _, _ = d.request("POST", "/incidents/INC-000001/resolve", b"csrf=x", {
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 401


def test_a_gzip_body_and_a_scrape_without_accept_encoding_pass_through_a_worker(make_daemon):
    d = make_daemon(http={"workers": 1, "tokens": TOKENS})
    connected(d, 1)
    # The worker decodes the body to read it: the daemon gets it decoded, not labelled gzip.
    body = gzip.compress(b'{"title": "Fibre cut"}')
    headers = {**BEARER, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, _, answer = d.request("POST", "/api/v1/incidents", body, headers)
    assert status == 201 and b'"Fibre cut"' in answer, answer
    # `curl .../metrics | grep`: no Accept-Encoding, so the text comes back as it is.
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.putrequest("GET", "/metrics", skip_accept_encoding=True)
    conn.endheaders()
    resp = conn.getresponse()
    text = resp.read()
    assert resp.status == 200 and resp.getheader("Content-Encoding") is None, resp.getheaders()
    assert b"correlator_http_workers_connected 1.0" in text
    # A client that asks for gzip gets gzip, as from the daemon alone.
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    packed = resp.read()
    assert resp.getheader("Content-Encoding") == "gzip"
    assert b"correlator_http_workers_connected 1.0" in gzip.decompress(packed)
    conn.close()


def test_a_refusal_passed_through_a_worker_is_counted_once_by_the_daemon(make_daemon):
    d = make_daemon(http={"workers": 1, "tokens": TOKENS})
    connected(d, 1)
    assert d.request("GET", "/api/v1/incidents/INC-999999", headers=BEARER)[0] == 404
    status, _, _ = d.request(
        "POST", "/api/v1/incidents", b'{"title": 5}', {**BEARER, "Content-Type": "application/json"}
    )
    assert status == 400
    name = "correlator_http_refused_total"
    # The worker sends its counters every second: long enough for a worker's count to show up too.
    d.wait_for(
        lambda: d.metric(name, {"route": "/api/v1/incidents", "status": "400"}) == 1, what="the 400 counted"
    )
    assert d.metric(name, {"route": "/api/v1/incidents/{id}", "status": "404"}) == 1
    # Ingest refused by the worker itself: once the daemon shows it, the worker has sent every
    # counter it had after the two refusals above (it sends them all at once).
    assert d.request("POST", "/api/v1/events", b"{", NDJSON)[0] == 400
    d.wait_for(
        lambda: b"correlator_events_rejected_total{" in d.request("GET", "/metrics")[2], what="a round"
    )
    _, _, body = d.request("GET", "/metrics")
    assert b'route="/{tail}"' not in body, [line for line in body.splitlines() if b"refused_total{" in line]
