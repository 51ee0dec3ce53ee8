"""The JetStream objects of the cluster: one connection, the event stream, the lease and state buckets."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from correlator.config import ClusterConfig
from correlator.errors import ConfigError
from correlator.secretfile import read_secret

log = logging.getLogger(__name__)

API_TIMEOUT = 5.0  # one JetStream API call or publish ack; past it the caller pushes back (503)


@dataclass
class Bus:
    nc: Client
    js: JetStreamContext
    settings: ClusterConfig
    leases: KeyValue  # partition -> owner; keys expire after lease_ttl unless renewed
    state: KeyValue  # partition -> stream position processed and stored; never expires

    def subject(self, partition: int) -> str:
        return f"{self.settings.stream}.{partition}"

    async def close(self) -> None:
        try:
            await self.nc.drain()
        except Exception:  # already closed or the cluster is gone: nothing more to flush
            await self.nc.close()


def member_name(settings: ClusterConfig) -> str:
    return settings.name or f"{socket.gethostname()}-{os.getpid()}"


def cluster_dsn(settings: ClusterConfig) -> str | None:
    if settings.dsn_file is not None:
        try:
            return read_secret(str(settings.dsn_file))
        except ValueError as e:
            raise ConfigError(f"'cluster.dsn_file': {e}") from None
    return settings.dsn


async def connect(settings: ClusterConfig) -> Bus:
    """Connect to any of the servers and declare the stream and buckets (idempotent: every process
    does it at start, whichever comes first creates them)."""
    token = None
    if settings.token_file is not None:
        try:
            token = read_secret(str(settings.token_file))
        except ValueError as e:
            raise ConfigError(f"'cluster.token_file': {e}") from None
    servers = [s.strip() for s in settings.servers.split(",") if s.strip()]
    nc = await nats.connect(
        servers=servers,
        token=token,
        name=member_name(settings),
        connect_timeout=API_TIMEOUT,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=-1,  # a NATS node restarting must never end the process
        allow_reconnect=True,
    )
    js = nc.jetstream(timeout=API_TIMEOUT)
    try:
        await _declare_stream(js, settings)
        leases = await js.create_key_value(
            KeyValueConfig(
                bucket=f"{settings.stream}_leases",
                history=1,
                ttl=settings.lease_ttl,
                replicas=settings.replicas,
                storage=StorageType.FILE,
            )
        )
        state = await js.create_key_value(
            KeyValueConfig(
                bucket=f"{settings.stream}_state",
                history=1,
                replicas=settings.replicas,
                storage=StorageType.FILE,
            )
        )
    except BaseException:
        await nc.close()
        raise
    return Bus(nc, js, settings, leases, state)


async def _declare_stream(js: JetStreamContext, settings: ClusterConfig) -> None:
    config = StreamConfig(
        name=settings.stream,
        subjects=[f"{settings.stream}.*"],
        retention=RetentionPolicy.LIMITS,  # kept for replay after a failover, not deleted on ack
        max_age=settings.retention,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=120.0,  # a publish retried after a lost ack (same Nats-Msg-Id) is kept once
    )
    try:
        await js.add_stream(config)
    except BadRequestError:  # exists with other settings: take the configured ones
        await js.update_stream(config)
