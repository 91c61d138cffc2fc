"""The connections a Redis store holds, to one server or to a Redis Cluster.

Three kinds, whatever the target:

- **commands**: a bounded pool (one server) or redis-py's `RedisCluster` (one pool per node,
  slots discovered from any seed, `MOVED`/`ASK` followed, the slot map refreshed after a
  failover); every script's keys share one hash tag, so each runs on the node of its slot.
- **blocking**: the same again with room for one connection per tailed workspace, each blocked
  in `XREAD BLOCK` on the node that owns the workspace's slot; a read that fails (the node
  died, the slot moved) is retried by the tail reader from the last seq it delivered.
- **Pub/Sub**: a plain connection to one node. Classic `PUBLISH` reaches every node of a
  Cluster over its bus, so any node will do; when it dies, `pubsub_client()` names another.

Every command runs through `shielded` (see `redis_feed.py`).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any

import redis.exceptions as rex
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from mezzo.store.redis_feed import BLOCK_MS, ShieldedRedis, shielded
from mezzo.store.redis_server import RESP_PROTOCOL, RedisConfigError
from mezzo.store.redis_target import RedisTarget

# One server: requests wait for one of a bounded set of connections rather than open one each.
POOL_SIZE = 64
# A Cluster: per node. redis-py's cluster pools refuse past the bound instead of waiting.
CLUSTER_POOL_SIZE = 512
COMMAND_TIMEOUT_S = 30.0
BLOCKING_TIMEOUT_S = BLOCK_MS / 1000 + 10.0


class ShieldedCluster(RedisCluster):
    """`RedisCluster` whose every command goes through `shielded`."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await shielded(super().execute_command(*args, **kwargs))


@dataclass(slots=True)
class RedisClients:
    target: RedisTarget
    commands: Any  # ShieldedRedis | ShieldedCluster: the same commands, two routings
    blocking: Any
    name: str

    @property
    def cluster(self) -> bool:
        return self.target.cluster

    def pubsub_client(self) -> Redis:
        """A new client for one Pub/Sub connection: the server, or a node of the Cluster picked
        at random (so a reconnect after a node died goes elsewhere). The caller closes it."""
        options = _options(f"{self.name}-pubsub")
        if not self.cluster:
            return Redis.from_url(self.target.redis_url, **options)
        nodes: list[Any] = self.commands.get_nodes() or [
            ClusterNode(host, port) for host, port in self.target.seeds
        ]
        node = random.choice(nodes)
        return Redis(
            host=node.host,
            port=node.port,
            username=self.target.username,
            password=self.target.password,
            ssl=self.target.tls,
            **options,
        )

    async def aclose(self) -> None:
        for client in (self.commands, self.blocking):
            with contextlib.suppress(rex.RedisError, OSError):
                await client.aclose()


def _options(name: str) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "protocol": RESP_PROTOCOL,
        "socket_connect_timeout": 5.0,
        "client_name": name,
    }


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)


def make_clients(target: RedisTarget, name: str) -> RedisClients:
    """The clients for `target`; nothing is connected yet. `RedisConfigError` for options
    redis-py refuses."""
    try:
        if target.cluster:
            return RedisClients(
                target,
                _cluster(target, name, CLUSTER_POOL_SIZE, COMMAND_TIMEOUT_S),
                _cluster(target, f"{name}-tail", 100_000, BLOCKING_TIMEOUT_S),
                name,
            )
        pool = BlockingConnectionPool.from_url(
            target.redis_url,
            max_connections=POOL_SIZE,
            timeout=20.0,
            socket_timeout=COMMAND_TIMEOUT_S,
            retry=_retry(),
            **_options(name),
        )
        blocking_pool = ConnectionPool.from_url(
            target.redis_url,
            max_connections=100_000,
            socket_timeout=BLOCKING_TIMEOUT_S,
            retry=_retry(),
            **_options(f"{name}-tail"),
        )
    except (ValueError, rex.RedisClusterException) as exc:
        raise RedisConfigError(f"bad Redis URL {target.where}: {exc}") from exc
    return RedisClients(
        target, ShieldedRedis.from_pool(pool), ShieldedRedis.from_pool(blocking_pool), name
    )


def _cluster(target: RedisTarget, name: str, pool_size: int, timeout: float) -> ShieldedCluster:
    return ShieldedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.seeds],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        # A failover leaves some slots without a primary for a second or two; the others
        # keep serving meanwhile, and a command for an uncovered slot is StoreUnavailable.
        require_full_coverage=False,
        max_connections=pool_size,
        socket_timeout=timeout,
        retry=_retry(),
        **_options(name),
    )
