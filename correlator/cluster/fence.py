"""Fencing of PostgreSQL writes: a worker that lost a partition without handing it over (paused
past its lease, cut off from NATS) writes nothing to the shared store once another worker took it.

Every worker process connects with an identity of its own as its `application_name`
(`cw:<member>:<random>`). The table `partition_owners` says which identity took each partition
last and `cluster_members` which identities may write: a worker enters it when it takes a
partition. A worker taking a partition that its previous owner did not hand over fences that owner
(its sessions are ended, its row deleted) before it reads anything; a trigger on the tables a
worker writes for its partitions (events, dead letters, incidents and their log) refuses, with
SQLSTATE `CRF01`, every statement of an identity without a row. The trigger reads the writer's row
FOR SHARE: the fencing delete waits for a write under way, and a write after it finds no row, so no
write of the old owner lands after the new owner started. Since a missing row refuses, rows of
workers gone for good can be deleted too: each claim sweeps those that own no partition and have
no session, so the table holds about one row per running worker however often workers restart.

The fenced worker drops every partition without a snapshot (the runner abandons the refused batch,
unacknowledged; cluster/roles.py) and, taking a partition again, enters the list again: by then
the runner is settled and nothing from before the fence is left to write.
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from typing import Any

from prometheus_client.metrics import Counter

from correlator.cluster.consume import PartitionQueue
from correlator.cluster.leases import Leases
from correlator.store.postgres import migrate_pg

log = logging.getLogger(__name__)

WRITES_FENCED = Counter(
    "correlator_cluster_writes_fenced_total",
    "Times PostgreSQL refused this worker's writes because another worker took a partition it held",
)

PREFIX = "cw:"  # application_name of a worker's sessions; other processes are never fenced
FENCED_TABLES = ("events", "dead_letters", "incidents", "incident_log")
LOCK_TIMEOUT = "5s"  # a takeover waiting longer for a write under way fails, and is retried
# A worker stopped inside its claim (SIGSTOP between two statements) holds the partition's row: the
# server ends its session once it sat idle that long, so the next claim is not refused for good.
IDLE_TIMEOUT = "10s"


def _fence_function(refused: str) -> str:
    """The trigger function, refusing a worker's statement when `refused` holds of its row's
    `fenced` (`out`; NULL when it has no row)."""
    return f"""
    CREATE OR REPLACE FUNCTION correlator_fence() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        me TEXT := current_setting('application_name');
        out BOOLEAN;
    BEGIN
        IF me LIKE 'cw:%' THEN
            SELECT fenced INTO out FROM cluster_members WHERE member = me FOR SHARE;
            IF {refused} THEN
                RAISE EXCEPTION 'worker % is fenced out: another worker took a partition it held', me
                    USING ERRCODE = 'CRF01';
            END IF;
        END IF;
        RETURN NULL;
    END $$;
    """  # noqa: S608 (constant conditions)


MIGRATIONS: list[str] = [
    # 1: owners, fenced identities, and the trigger refusing the writes of a fenced one
    """
    CREATE TABLE partition_owners (partition INTEGER PRIMARY KEY, member TEXT);
    CREATE TABLE cluster_members (member TEXT PRIMARY KEY, fenced BOOLEAN NOT NULL);
    """
    + _fence_function("out")
    + "".join(
        f"CREATE TRIGGER {t}_fence BEFORE INSERT OR UPDATE ON {t}"
        " FOR EACH STATEMENT EXECUTE FUNCTION correlator_fence();\n"
        for t in FENCED_TABLES
    ),
    # 2: cluster_members lists the identities allowed to write, so that rows of workers long gone
    # can be deleted: a worker without a row (fenced, or swept) is refused like a fenced one.
    # `fenced` stays for workers of the previous version during a rolling upgrade.
    _fence_function("out IS DISTINCT FROM false") + "DELETE FROM cluster_members WHERE fenced;",  # noqa: S608
]


def worker_dsn(dsn: str, member: str) -> str:
    """The DSN with this worker process' identity as its application_name (unique per start)."""
    parts = urllib.parse.urlsplit(dsn)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "application_name"]
    name = f"{PREFIX}{member[:40]}:{secrets.token_hex(6)}"  # PostgreSQL keeps 63 bytes of it
    query.append(("application_name", name))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def give_up(leases: Leases, queue: PartitionQueue) -> None:
    """The database refused a write: another worker took a partition of this one without a
    hand-over. Give every partition up at once, without a snapshot (the state holds what the
    refused batches did), so their owners read them again from their positions. The runner awaits
    this before its next write: no batch of a partition given up is acknowledged after it."""
    WRITES_FENCED.inc()
    log.error("fenced out of the database: giving up partitions %s", queue.partitions)
    for p in queue.partitions:
        await queue.drop(p, hand_over=False)
    for p in list(leases.owned):
        try:
            await leases.release(p)
        except Exception as e:  # its lease expires by itself
            log.warning("partition %d: lease not released: %s: %s", p, type(e).__name__, e)


# The rows of identities gone for good: owning no partition (handed over, or taken from them)
# and with no session open. A live worker always has its pool's sessions; one that lost them for
# a moment owns no partition either, so it writes nothing until it takes one and enters again.
# A row another claim is sweeping is skipped, not waited for: two sweeps never deadlock.
_SWEEP = """
DELETE FROM cluster_members WHERE member IN (
    SELECT member FROM cluster_members m WHERE member <> $1
        AND NOT EXISTS (SELECT 1 FROM partition_owners o WHERE o.member = m.member)
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = m.member)
    FOR UPDATE SKIP LOCKED
)
"""


class Owners:
    """This worker's side of `partition_owners` (through the event store's pool)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._ready = False

    @property
    def _pool(self) -> Any:
        return getattr(self._store, "pool", None)  # None: not PostgreSQL (a test's SQLite store)

    async def claim(self, p: int) -> None:
        """Take `p` in the database: fence its previous owner unless it handed it over, sweep the
        rows of workers gone, and enter (or enter again) the identities allowed to write (call
        with the runner settled: nothing from before is in flight)."""
        pool = self._pool
        if pool is None:
            return
        async with pool.acquire() as conn:
            if not self._ready:
                await migrate_pg(conn, "cluster", MIGRATIONS)
                self._ready = True
            async with conn.transaction():
                await conn.execute(
                    f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';"
                    f" SET LOCAL idle_in_transaction_session_timeout = '{IDLE_TIMEOUT}'"
                )
                me = await conn.fetchval("SELECT current_setting('application_name')")
                before = await conn.fetchval(
                    "SELECT member FROM partition_owners WHERE partition = $1 FOR UPDATE", p
                )
                if before is not None and before != me:
                    await self._fence(conn, before, p)
                # The server keeps one copy of pg_stat_activity per transaction, taken at its first
                # read (the fence's): a worker that started since and entered the list would look
                # gone. A fresh read sees every session a row visible to the sweep had.
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                await conn.execute(_SWEEP, me)
                await conn.execute(
                    "INSERT INTO cluster_members(member, fenced) VALUES ($1, false)"
                    " ON CONFLICT (member) DO UPDATE SET fenced = false",
                    me,
                )
                await conn.execute(
                    "INSERT INTO partition_owners(partition, member) VALUES ($1, $2)"
                    " ON CONFLICT (partition) DO UPDATE SET member = EXCLUDED.member",
                    p,
                    me,
                )

    async def release(self, p: int) -> None:
        """Handing `p` over (SIGTERM, rebalancing): its next owner has no one to fence."""
        pool = self._pool
        if pool is None or not self._ready:
            return
        await pool.execute(
            "UPDATE partition_owners SET member = NULL WHERE partition = $1"
            " AND member = current_setting('application_name')",
            p,
        )

    async def _fence(self, conn: Any, member: str, p: int) -> None:
        # Its sessions end first: one paused inside a transaction holds its row's lock for good.
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND pid <> pg_backend_pid()",
            member,
        )
        # Out of the list of identities allowed to write. The delete waits for the row lock of a
        # write under way; a write after it finds no row and is refused.
        await conn.execute("DELETE FROM cluster_members WHERE member = $1", member)
        log.warning(
            "partition %d: its previous owner %s did not hand it over; fenced out of the database"
            " (%d of its sessions ended)",
            p, member, ended,
        )  # fmt: skip
