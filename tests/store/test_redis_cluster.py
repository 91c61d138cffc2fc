"""The whole conformance suite, unchanged, against a real Redis Cluster: 3 primaries and 3
replicas on loopback (`loopback_cluster`), reached by a `redis+cluster://` URL.

With 16 queue partitions spread over three nodes, a workspace's log on one node and its job's
partition on another, this checks what one node cannot: that every script runs on the node of
its slot, that pipelines spanning nodes keep their meaning, and that the queue's views
aggregate over the partitions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import test_conformance
from redis_cluster import RedisClusterProcess

from mezzo.protocol import NewEvent
from mezzo.store.base import NewJob
from mezzo.store.redis import RedisStore
from mezzo.store.redis_server import RedisConfigError

for _name, _test in vars(test_conformance).items():
    if _name.startswith("test_"):
        globals()[_name] = _test


@pytest.fixture
def store_location() -> tuple[str, str]:
    return "redis", f"cluster-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(
    loopback_cluster: RedisClusterProcess, store_location: tuple[str, str]
) -> AsyncIterator[RedisStore]:
    opened = RedisStore(loopback_cluster.url, prefix=store_location[1])
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store_reopened(
    loopback_cluster: RedisClusterProcess, store_location: tuple[str, str], store: RedisStore
) -> AsyncIterator[RedisStore]:
    opened = RedisStore(loopback_cluster.url, prefix=store_location[1])
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_store_is_on_a_cluster_with_sixteen_partitions(store: RedisStore) -> None:
    assert store.cluster and store.partitions == 16


async def test_jobs_spread_over_partitions_on_every_primary(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    for i in range(64):
        await store.append(
            f"ws{i}",
            f"r{i}",
            [NewEvent(type="run_queued")],
            0,
            enqueue=NewJob("q", f"run:r{i}", {"workspace": f"ws{i}"}),
        )
    primaries = set()
    for partition in range(store.partitions):
        key = f"{store.prefix}:{{q:q{'' if partition == 0 else f':{partition}'}}}:jobs"
        primaries.add(loopback_cluster.primary_of(key).port)
    assert len(primaries) == 3
    assert sum((await store.queue_depth("q")).values()) == 64
    leased = await store.lease("q", "w", 100, 30)
    assert sorted(job.id for job in leased) == sorted(f"run:r{i}" for i in range(64))


async def test_a_url_asking_for_another_partition_count_is_refused(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    other = RedisStore(f"{loopback_cluster.url}?partitions=4", prefix=store.prefix)
    with pytest.raises(RedisConfigError, match=r"16 partitions.*asks for 4"):
        await other.open()
