"""Every store operation touches one Cluster slot: the whole conformance suite, unchanged,
against a Redis in cluster mode (one node holding all 16384 slots).

A cluster node refuses any multi-key command whose keys hash to different slots (CROSSSLOT),
and on Redis ≥ 7 any script (run with the `#!lua` shebang) that touches a key outside the slot
of its declared keys. So a pass here means the hash tags put each operation in one slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import test_conformance
from redis.crc import key_slot
from redis_process import RedisProcess, free_port

from mezzo.protocol import NewEvent
from mezzo.store.base import Hold
from mezzo.store.redis import RedisStore

for _name, _test in vars(test_conformance).items():
    if _name.startswith("test_"):
        globals()[_name] = _test


@pytest.fixture(scope="module")
def cluster_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    folder = tmp_path_factory.mktemp("redis-cluster")
    bus = ["--cluster-port", str(free_port())]  # else port + 10000, maybe past 65535
    with RedisProcess(folder, "--cluster-enabled", "yes", *bus) as server:
        client = redis.Redis(port=server.port)
        client.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        deadline = time.monotonic() + 15
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not come up")
            time.sleep(0.1)
        client.close()
        yield server


@pytest.fixture
def store_location() -> tuple[str, str]:
    return "redis", f"slots-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(
    cluster_node: RedisProcess, store_location: tuple[str, str]
) -> AsyncIterator[RedisStore]:
    opened = RedisStore(cluster_node.url, prefix=store_location[1])
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store_reopened(
    cluster_node: RedisProcess, store_location: tuple[str, str], store: RedisStore
) -> AsyncIterator[RedisStore]:
    opened = RedisStore(cluster_node.url, prefix=store_location[1])
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_cross_slot_script_is_refused_so_the_check_is_real(store: RedisStore) -> None:
    if store.server_version < (7, 0):
        pytest.skip("script slot checks need Redis 7")
    client = redis.asyncio.Redis.from_url(store.url)
    try:
        with pytest.raises(redis.ResponseError, match="same slot"):
            await client.eval(
                "#!lua\nredis.call('SET', KEYS[1], 1)\nreturn redis.call('SET', '{b}y', 1)",
                1,
                "{a}x",
            )
    finally:
        await client.aclose()


async def test_one_workspace_keys_share_a_slot(store: RedisStore) -> None:
    await store.append("ws-1", "r1", [NewEvent(type="run_queued")], 0)
    await store.ledger_init("ws-1", 100)
    await store.hold("ws-1", Hold("res-1", 10, 1))
    await store.hold("ws-1", Hold("waits", 95, 1))  # in the line
    await store.settle("ws-1", "res-1", 5, [0.01])
    client = redis.asyncio.Redis.from_url(store.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{store.prefix}:{{w:ws-1}}:*")]
    finally:
        await client.aclose()
    # log, head, versions, run index, open runs, ledger, settled hold, waiting line
    assert len(keys) >= 8
    assert len({key_slot(k) for k in keys}) == 1
