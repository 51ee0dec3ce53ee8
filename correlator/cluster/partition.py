"""The partition of an event, computed by the publisher (NATS 2.9 has no subject-transform
partitioning): a key from the event's host, hashed onto `cluster.partitions`.
"""

from __future__ import annotations

import zlib

from correlator.inventory import Inventory


def host_key(host: str, inventory: Inventory | None, by: str) -> str:
    """Events with one key land in one partition, so every level-2 rule state of that key lives on one
    worker. By site (inventory), cross-host rules within a site (topology, group) stay on one worker;
    a host without a site is its own key."""
    if by == "site" and inventory is not None:
        asset = inventory.get(host)
        if asset is not None and asset.site:
            return "site:" + asset.site
    return "host:" + host


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions
