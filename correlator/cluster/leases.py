"""Which worker owns which partition: leases in a JetStream KV bucket whose keys expire after
`lease_ttl` unless renewed. Every update is revision-checked (KeyWrongLastSequenceError), so of two
workers that both believe they own a partition, only the one holding the current revision may renew.

Keys: `m.<member>` says a worker is alive (renewed each round); `p.<partition>` holds its owner.
A worker takes at most its fair share, ceil(partitions / live workers): one that joins takes free
partitions as the others give up what exceeds their share; one that dies (SIGKILL) stops renewing
and its keys expire, so the others take its partitions within lease_ttl plus one round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable

from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

Gain = Callable[[int], Awaitable[bool]]  # start consuming the partition; False: could not (retry later)
Loss = Callable[[int], Awaitable[None]]  # stop consuming it at once: another worker owns it now

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a write whose expected revision is stale


def key_safe(name: str) -> str:
    return re.sub(r"[^-_=a-zA-Z0-9]", "_", name) or "worker"


class Leases:
    def __init__(
        self, kv: KeyValue, member: str, partitions: int, ttl: float, gain: Gain, loss: Loss
    ) -> None:
        self._kv = kv
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
                log.warning("partition leases: %s: %s", type(e).__name__, e)
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        await self._kv.put(f"m.{self.member}", b"alive")
        for p, rev in list(self.owned.items()):
            try:
                self.owned[p] = await self._kv.update(f"p.{p}", self.member.encode(), last=rev)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                log.warning("partition %d: lease lost (expired or taken over); stopping it", p)
                await self._drop(p)
        keys = await self._keys()
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

    async def _keys(self) -> list[str]:
        try:
            return list(await self._kv.keys())
        except NoKeysError:
            return []
