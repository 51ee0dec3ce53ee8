"""Which worker owns which partition: leases in a JetStream KV bucket whose keys expire after
`lease_ttl` unless renewed. Every update is revision-checked (KeyWrongLastSequenceError), so of two
workers that both believe they own a partition, only the one holding the current revision may renew.

Keys: `m.<member>` says a worker is alive (renewed each round); `p.<partition>` holds its owner.
A worker takes at most its fair share, ceil(partitions / live workers): one that joins takes free
partitions as the others give up what exceeds their share; one that dies (SIGKILL) stops renewing
and its keys expire, so the others take its partitions within lease_ttl plus one round.

Each round lists the bucket's keys through a short-lived ordered consumer (the last message of each
key). nats-py's `KeyValue.keys()` waits, without a time limit, for a message the server reports with
nothing pending after it; a server that counts one message too many (seen with nats-server 2.9 when
a key was rewritten just before the listing) never sends one, and the lease loop stopped for good:
no renewal, no takeover, nothing logged. Here the listing reads to this worker's own `m.<member>`
write of the round, then to the stream's last message at that moment (or to one with nothing
pending), within API_TIMEOUT; a round that fails is logged, counted, and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from prometheus_client.metrics import Counter

from correlator.cluster.bus import API_TIMEOUT, Bus

log = logging.getLogger(__name__)

ROUNDS_FAILED = Counter(
    "correlator_cluster_lease_rounds_failed_total",
    "Lease rounds that failed (NATS unreachable, no quorum, a JetStream call or the key listing timed"
    " out); the next round tries again",
)

Gain = Callable[[int], Awaitable[bool]]  # start consuming the partition; False: could not (retry later)
Loss = Callable[[int], Awaitable[None]]  # stop consuming it at once: another worker owns it now

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a write whose expected revision is stale


def key_safe(name: str) -> str:
    return re.sub(r"[^-_=a-zA-Z0-9]", "_", name) or "worker"


class Leases:
    def __init__(self, bus: Bus, member: str, partitions: int, ttl: float, gain: Gain, loss: Loss) -> None:
        self._bus = bus
        self._kv = bus.leases
        self._bucket = f"{bus.settings.stream}_leases"
        self.list_timeout = API_TIMEOUT  # the key listing's limit, like any JetStream call's
        self.member = key_safe(member)
        self._partitions = partitions
        self.interval = max(ttl / 3, 0.2)  # three renewals per ttl: one lost round costs nothing
        self._gain = gain
        self._loss = loss
        self.owned: dict[int, int] = {}  # partition -> revision of our lease
        self.members = 1

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS unreachable or no quorum: keys we cannot renew expire
                ROUNDS_FAILED.inc()
                log.warning("partition leases: %s: %s", type(e).__name__, e)
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        alive = await self._kv.put(f"m.{self.member}", b"alive")
        for p, rev in list(self.owned.items()):
            try:
                self.owned[p] = await self._kv.update(f"p.{p}", self.member.encode(), last=rev)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                log.warning("partition %d: lease lost (expired or taken over); stopping it", p)
                await self._drop(p)
        keys = await self._keys(alive)
        members = sum(1 for k in keys if k.startswith("m."))
        self.members = max(members, 1)
        share = math.ceil(self._partitions / self.members)
        for p in sorted(self.owned, reverse=True)[: max(len(self.owned) - share, 0)]:
            await self.release(p)  # a worker joined: give it room
        taken = {int(k[2:]) for k in keys if k.startswith("p.") and k[2:].isdigit()}
        for p in range(self._partitions):
            if len(self.owned) >= share:
                break
            if p in taken or p in self.owned:
                continue
            try:
                rev = await self._kv.create(f"p.{p}", self.member.encode())
            except KeyWrongLastSequenceError:
                continue  # another worker was quicker
            self.owned[p] = rev
            if not await self._gain(p):
                await self.release(p)

    async def release(self, p: int) -> None:
        rev = self.owned.get(p)
        await self._drop(p)
        if rev is not None:
            try:
                await self._kv.delete(f"p.{p}", last=rev)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                pass  # expired or taken over
            except APIError as e:  # a delete's stale revision is not told apart by the client
                if e.err_code != WRONG_LAST_SEQUENCE:
                    raise

    async def release_all(self) -> None:
        """Clean shutdown: hand every partition over at once instead of after lease_ttl."""
        for p in list(self.owned):
            await self.release(p)
        try:
            await self._kv.delete(f"m.{self.member}")
        except Exception as e:
            log.info("partition leases: could not withdraw %s: %s", self.member, e)

    async def _drop(self, p: int) -> None:
        if self.owned.pop(p, None) is not None:
            await self._loss(p)

    async def _keys(self, upto: int) -> list[str]:
        """The keys holding a value (deleted or purged ones left out), each as of its last message:
        every key written up to the stream's last message once this round's own `m.<member>` write
        (stream sequence `upto`) was listed. TimeoutError after `list_timeout`."""
        prefix = f"$KV.{self._bucket}."
        stream = f"KV_{self._bucket}"
        keys: list[str] = []
        seen = 0  # the highest stream sequence listed
        target = upto
        done = asyncio.get_running_loop().create_future()

        async def on_msg(msg: Msg) -> None:
            nonlocal seen
            headers = msg.headers or {}
            if headers.get("KV-Operation") is None and headers.get("Nats-Marker-Reason") is None:
                keys.append(msg.subject[len(prefix) :])
            meta = msg.metadata
            seen = max(seen, meta.sequence.stream)
            # The last message per key comes in stream order, so once the one at `target` (or a
            # later one) is here every key written before it is listed; a server's pending count
            # may never reach 0.
            if (seen >= target or meta.num_pending == 0) and not done.done():
                done.set_result(None)

        sub = await self._bus.js.subscribe(
            f"{prefix}>",
            stream=stream,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=True,
        )
        try:
            async with asyncio.timeout(self.list_timeout):
                await done
                # Keys rewritten since our own write (other workers' renewals, with one message
                # kept per key) have their only message after it: read on to the stream's end as
                # it is now, or a joiner renewing in step with us would never be counted.
                target = (await self._bus.js.stream_info(stream)).state.last_seq
                if seen < target:
                    done = asyncio.get_running_loop().create_future()
                    await done
        finally:
            await sub.unsubscribe()
        return keys
