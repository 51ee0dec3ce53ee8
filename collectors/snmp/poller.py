"""Scheduled polling of SNMP targets (APScheduler + pysnmp GETBULK) for availability and capacity.

Each target is one interval job: one GETBULK fetches sysUpTime and the first rows of the wanted
columns, more follow only for long tables. capacity.py turns the sample into gauges and events, which
go to ctx.emit; a semaphore bounds requests in flight so hundreds of targets never swamp the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client.metrics import Counter, Gauge, Histogram
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
)
from pysnmp.proto import rfc1905

from collectors.snmp.ber import NO_VALUE, oid_str
from collectors.snmp.capacity import POLL_SOURCE, Interface, Sample, TargetState
from collectors.snmp.client import BulkClient, Varbinds
from collectors.snmp.engine import AUTH, PRIV
from collectors.snmp.engine import plain as engine_plain
from collectors.snmp.mapping import text
from collectors.snmp.settings import SnmpSettings, Target
from correlator import capacity, door
from correlator.collector import Emit
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

# correlator_capacity_utilization_ratio{ci,resource,kind} is declared once, in correlator/capacity,
# which also forecasts time to full; the poller reports through capacity.record/forget.
CAPACITY = capacity.EXPORTER
TARGET_UP = Gauge("correlator_snmp_target_up", "1 if the target answered its last poll", ["ci"])
POLLS = Counter("correlator_snmp_polls_total", "Polls of SNMP targets by result", ["result"])
POLL_SECONDS = Histogram(
    "correlator_snmp_poll_duration_seconds",
    "Time of one target's poll (all its requests)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
_SYS_UPTIME_COLUMN = "1.3.6.1.2.1.1.3"  # GETBULK non-repeaters are GETNEXTs: ask for the one before
_IF, _IFX = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
_HR_STORAGE = "1.3.6.1.2.1.25.2.3.1."
COLUMNS = {
    "interfaces": {
        "descr": _IF + "2",
        "admin": _IF + "7",
        "oper": _IF + "8",
        "hc_in": _IFX + "6",
        "hc_out": _IFX + "10",
        "high_speed": _IFX + "15",
    },
    "host_resources": {
        "cpu": "1.3.6.1.2.1.25.3.3.1.2",
        "st_type": _HR_STORAGE + "2",
        "st_descr": _HR_STORAGE + "3",
        "st_size": _HR_STORAGE + "5",
        "st_used": _HR_STORAGE + "6",
    },
}
# hrStorageRam, hrStorageFixedDisk, hrStorageNetworkDisk: "cached" or "shared" memory are always "full".
STORAGE_TYPES = {"1.3.6.1.2.1.25.2.1.2", "1.3.6.1.2.1.25.2.1.4", "1.3.6.1.2.1.25.2.1.10"}
MAX_REPETITIONS = 16
MAX_ROWS = 1024  # per column: bounds work and gauge labels for an odd agent with endless tables
# Per poll, the first GETBULK included: full tables need 1 + MAX_ROWS / MAX_REPETITIONS = 65; the
# rest is room for agents that answer fewer rows than asked. Bounds the time a poll holds its slot.
MAX_REQUESTS = 4 * MAX_ROWS // MAX_REPETITIONS


class Poller:
    def __init__(self, settings: SnmpSettings, emit: Emit, hosts: dict[str, str]) -> None:
        self._settings = settings
        self._emit = emit
        # Events name the target's `hosts` entry if it has one, else the target; gauges use the target name.
        self._states = {t.name: TargetState(hosts.get(t.host, t.name)) for t in settings.targets}
        self._labels: dict[str, set[tuple[str, str]]] = {t.name: set() for t in settings.targets}
        self._engine: SnmpEngine | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._sem: asyncio.Semaphore | None = None
        self._transports: dict[str, UdpTransportTarget] = {}
        self._client: BulkClient | None = None
        self._addresses: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        if any(t.version == "v3" for t in self._settings.targets):
            self._engine = SnmpEngine()  # inside the running loop, as pysnmp requires
        self._sem = asyncio.Semaphore(self._settings.poll_concurrency)
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        now = time.time()
        for t in self._settings.targets:
            # Spread first polls over the interval so 500 targets do not all fire in the same second.
            first = datetime.fromtimestamp(now + random.uniform(0, min(t.interval, 10.0)), UTC)
            self._scheduler.add_job(
                self.poll,
                "interval",
                args=[t],
                seconds=t.interval,
                id=f"snmp-poll:{t.name}",
                next_run_time=first,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(t.interval),
            )
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._engine is not None:
            self._engine.close_dispatcher()
        if self._client is not None:
            self._client.close()

    async def poll_all(self) -> None:
        """Poll every target once now (the benchmark and tests use this)."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._settings.poll_concurrency)
        await asyncio.gather(*(self.poll(t) for t in self._settings.targets))

    async def poll(self, target: Target) -> None:
        assert self._sem is not None
        async with self._sem:
            started = time.monotonic()
            try:
                sample = await self._sample(target)
            except Exception as e:  # one odd agent must not stop the others' polls
                POLLS.labels("error").inc()
                _ratelog.warning(f"poll:{target.name}", "snmp: polling %s failed: %r", target.name, e)
                return
            POLL_SECONDS.observe(time.monotonic() - started)
        POLLS.labels("ok" if sample.uptime is not None else "timeout").inc()
        await self._apply(target, sample)

    async def _apply(self, target: Target, sample: Sample) -> None:
        old = self._states[target.name]
        now = time.time()
        new, events, ratios = old.update(sample, now, self._settings.thresholds)
        for e in events:
            e.attributes["target"] = f"{target.host}:{target.port}"
        events = [e for e in events if _admitted(e, target.name)]
        if events:
            try:
                await self._emit(events, POLL_SOURCE)
            except (QueueFull, ShuttingDown) as e:
                # Keep the old state: the same change is detected again at the next poll.
                _ratelog.warning("poll:emit", "snmp: poll events of %s not accepted: %s", target.name, e)
                return
        self._states[target.name] = new
        TARGET_UP.labels(target.name).set(1 if sample.uptime is not None else 0)
        seen = set(ratios)  # empty when unreachable: no stale utilisation for a silent target
        for (resource, kind), ratio in ratios.items():
            capacity.record(target.name, resource, kind, ratio, now)
        for resource, kind in self._labels[target.name] - seen:
            capacity.forget(target.name, resource, kind)  # interface gone or counters reset
        self._labels[target.name] = seen

    async def _sample(self, target: Target) -> Sample:
        columns: dict[str, str] = {}
        for kind in target.poll:
            columns.update(COLUMNS.get(kind, {}))
        reps = MAX_REPETITIONS if columns else 0
        answer = await self._bulk(target, 1, reps, [_SYS_UPTIME_COLUMN, *columns.values()])
        if answer is None:
            return Sample(None)
        if not answer or answer[0][0] != SYS_UPTIME or not isinstance(answer[0][1], int):
            raise RuntimeError("no sysUpTime in the answer")
        rows = await self._columns(target, columns, answer[1:])
        return _build_sample(answer[0][1], rows)

    async def _columns(
        self, target: Target, columns: dict[str, str], vbs: Varbinds
    ) -> dict[str, dict[str, Any]]:
        """Walk the columns side by side, continuing with GETBULK only while some are unfinished.

        Raises RuntimeError for an agent whose OIDs do not increase within a column (net-snmp's
        "OID not increasing"), which would be walked for ever, and for a walk of more than
        MAX_REQUESTS requests."""
        rows: dict[str, dict[str, Any]] = {name: {} for name in columns}
        pos = dict(columns)  # where each column's walk continues
        last: dict[str, tuple[int, ...]] = {name: () for name in columns}  # its index, to compare
        active = list(columns)
        requests = 1  # the poll's first GETBULK brought vbs
        while active and vbs:
            finished: set[str] = set()
            for i, (oid, value) in enumerate(vbs):
                name = active[i % len(active)]
                if name in finished:
                    continue
                prefix = columns[name] + "."
                if oid.startswith(prefix) and value is not NO_VALUE:
                    index = tuple(map(int, oid[len(prefix) :].split(".")))
                    if index <= last[name]:
                        raise RuntimeError(f"OID not increasing: {oid} after {pos[name]}")
                    rows[name][oid[len(prefix) :]] = value
                    pos[name], last[name] = oid, index
                else:
                    finished.add(name)
            active = [n for n in active if n not in finished and len(rows[n]) < MAX_ROWS]
            if not active:
                break
            if requests >= MAX_REQUESTS:
                raise RuntimeError(f"tables not walked in {MAX_REQUESTS} requests")
            requests += 1
            more = await self._bulk(target, 0, MAX_REPETITIONS, [pos[n] for n in active])
            if not more:
                break  # keep what we have; the next poll tries again
            vbs = more
        return rows

    async def _bulk(self, target: Target, non_rep: int, reps: int, oids: list[str]) -> Varbinds | None:
        """One GETBULK -> [(dotted OID, plain value)]; None if the target did not answer."""
        s = self._settings
        if target.version == "v2c":
            if self._client is None:
                self._client = BulkClient()
                await self._client.open()
            addr = await self._address(target)
            got = await self._client.bulk(
                addr, target.community, non_rep, reps, oids, s.poll_timeout, s.poll_retries
            )
            if got is None:
                return None
            if got[0]:
                raise RuntimeError(f"agent error-status {got[0]}")
            return got[1]
        return await self._bulk_v3(target, non_rep, reps, oids)

    async def _bulk_v3(self, target: Target, non_rep: int, reps: int, oids: list[str]) -> Varbinds | None:
        s = self._settings
        if self._engine is None:
            self._engine = SnmpEngine()
        transport = self._transports.get(target.name)
        if transport is None:
            transport = await UdpTransportTarget.create(
                (target.host, target.port), timeout=s.poll_timeout, retries=s.poll_retries
            )
            self._transports[target.name] = transport
        for attempt in (1, 2):
            err, status, _, vbs = await bulk_cmd(
                self._engine,
                _auth(target),
                transport,
                ContextData(),
                non_rep,
                reps,
                *(ObjectType(ObjectIdentity(o)) for o in oids),
                lookupMib=False,  # MIB name lookups cost more than the whole decode: we know our OIDs
            )
            if not err:
                break
            # A device that restarted with a new engine id never answers requests under the old
            # one, and pysnmp keeps using the id it learned: forget it and ask once more, which
            # discovers the engine again (RFC 3414 4). A dead device has nothing left to forget
            # after its first failed poll, so it is not asked twice again.
            forgot = attempt == 1 and self._forget_engine(transport)
            _ratelog.warning(
                f"poll:v3:{target.name}",
                "snmp: v3 poll of %s (%s:%d) failed: %s%s",
                target.name, target.host, target.port, err,
                "; discovering its engine id again" if forgot else "",
            )  # fmt: skip
            if not forgot:
                return None
        if status:
            raise RuntimeError(f"agent error-status {status}")
        return [(str(n), _plain(v)) for n, v in vbs]

    def _forget_engine(self, transport: UdpTransportTarget) -> bool:
        """Drop the engine id the shared engine learned for the agent at `transport`; True if there
        was one. pysnmp has no public call for it: its SNMPv3 message processing model caches it by
        (transport domain, address) and expires it only after 300 s of timer ticks. Another pysnmp
        layout gives False (no re-discovery), which tests/integration/test_snmp_polling.py catches."""
        assert self._engine is not None
        mp = self._engine.message_processing_subsystems.get(3)
        cache = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCache", None)
        if not isinstance(cache, dict):
            return False
        address = tuple(transport.transport_address)[:2]
        stale = [k for k in cache if tuple(k[1])[:2] == address]
        for k in stale:
            del cache[k]
        return bool(stale)

    async def _address(self, target: Target) -> tuple[str, int]:
        addr = self._addresses.get(target.name)
        if addr is None:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
            )
            addr = (str(infos[0][4][0]), target.port)
            self._addresses[target.name] = addr
        return addr


_END = {rfc1905.noSuchObject.tagSet, rfc1905.noSuchInstance.tagSet, rfc1905.endOfMibView.tagSet}


def _plain(value: Any) -> Any:
    """pysnmp value -> what the fast path yields (int, bytes, ("oid", raw), NO_VALUE)."""
    if value.tagSet in _END:
        return NO_VALUE
    return engine_plain("0.0", value)[1]


def _auth(t: Target) -> CommunityData | UsmUserData:
    if t.version == "v2c" or t.user is None:
        return CommunityData(t.community, mpModel=1)  # noqa: S508 - the operator chose v2c for this target
    u = t.user
    kw: dict[str, Any] = {}
    if u.auth_protocol:
        kw.update(authKey=u.auth_key, authProtocol=AUTH[u.auth_protocol])
    if u.priv_protocol:
        kw.update(privKey=u.priv_key, privProtocol=PRIV[u.priv_protocol])
    return UsmUserData(u.name, **kw)  # noqa: S509 - security level is the operator's choice


def _build_sample(uptime: int, rows: dict[str, dict[str, Any]]) -> Sample:
    s = Sample(uptime)

    def num(col: str, idx: str) -> int | None:
        v = rows.get(col, {}).get(idx)
        return v if isinstance(v, int) else None

    for idx, descr in rows.get("descr", {}).items():
        if not idx.isdigit():
            continue
        s.interfaces[int(idx)] = Interface(
            descr=text(descr) if isinstance(descr, bytes) else str(descr),
            admin=num("admin", idx),
            oper=num("oper", idx),
            hc_in=num("hc_in", idx),
            hc_out=num("hc_out", idx),
            high_speed=num("high_speed", idx),
        )
    s.cpu_loads = [v for v in rows.get("cpu", {}).values() if isinstance(v, int)]
    for idx, descr in rows.get("st_descr", {}).items():
        size, used = num("st_size", idx), num("st_used", idx)
        kind = rows.get("st_type", {}).get(idx)
        if isinstance(kind, tuple) and oid_str(kind[1]) not in STORAGE_TYPES:
            continue
        if size is not None and used is not None:
            s.storage[text(descr) if isinstance(descr, bytes) else str(descr)] = (used, size)
    return s


def _admitted(event: Event, target: str) -> bool:
    """The door (correlator/door.py): a refused poll event is counted and left out; the state
    still moves on, so the same refusal is not repeated at every poll."""
    e = door.refusal(event, POLL_SOURCE)
    if e is not None:
        _ratelog.warning(f"poll:door:{e.reason}", "snmp: refused a poll event of %s: %s", target, e)
    return e is None
