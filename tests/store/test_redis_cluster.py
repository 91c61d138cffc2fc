"""The whole conformance suite, unchanged, against a real Redis Cluster: 3 primaries and 3
replicas on loopback (`loopback_cluster`), reached by a `redis+cluster://` URL.

With 16 queue partitions spread over three nodes, a workspace's log on one node and its job's
partition on another, this checks what one node cannot: that every script runs on the node of
its slot, that pipelines spanning nodes keep their meaning, and that the queue's views
aggregate over the partitions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
import test_conformance
from redis.crc import key_slot
from redis_cluster import RedisClusterProcess
from redis_process import RedisProcess, free_port

from mezzo.protocol import NewEvent
from mezzo.store.base import Hold, NewJob, StoreUnavailable
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


async def test_a_tail_follows_its_workspace_slot_to_another_primary(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    """The slot of a tailed workspace migrates (MOVED for the blocked XREAD, ASK meanwhile):
    the subscriber gets every event once, in order, before and after the move."""
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.tail("moving"):
            seen.append(event.seq or 0)
            if len(seen) == 20:
                return

    follower = asyncio.create_task(follow())
    for i in range(10):
        await store.append("moving", f"r{i}", [NewEvent(type="run_queued")], 0)
    await asyncio.sleep(0.3)
    log_key = f"{store.prefix}:{{w:moving}}:log"
    source = loopback_cluster.primary_of(log_key)
    target = next(p for p in loopback_cluster.primaries() if p.port != source.port)
    await asyncio.to_thread(loopback_cluster.move_slot, log_key, target)
    assert loopback_cluster.primary_of(log_key).port == target.port
    for i in range(10, 20):
        await store.append("moving", f"r{i}", [NewEvent(type="run_queued")], 0)
    await asyncio.wait_for(follower, 20)
    assert seen == list(range(1, 21))


async def test_a_bad_cluster_url_is_refused_in_mezzos_words() -> None:
    for url, message in [
        ("redis+cluster://127.0.0.1:notaport", "want host:port"),
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://127.0.0.1:7000?durability=maybe", "durability must be"),
        ("redis+cluster://127.0.0.1:7000?partitions=0", "partitions must be"),
        ("redis+cluster://127.0.0.1:7000?socket_timeout=1", "not socket_timeout"),
    ]:
        with pytest.raises(RedisConfigError, match=message):
            RedisStore(url)


async def test_an_unreachable_cluster_or_a_plain_server_is_told_apart() -> None:
    with pytest.raises(StoreUnavailable, match="unreachable: no node answered"):
        await RedisStore(f"redis+cluster://127.0.0.1:{free_port()}").open()
    with pytest.raises(RedisConfigError, match="not a Redis Cluster node"):
        await RedisStore("redis+cluster://127.0.0.1:6379").open()


async def test_replicated_durability_waits_for_a_replica(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    """With `durability=replicated` an accepting append returns once a replica has the run's
    event and its job: read on the replicas right after, they are there."""
    replicated = RedisStore(f"{loopback_cluster.url}?durability=replicated", prefix=store.prefix)
    await replicated.open()
    try:
        job = NewJob("q", "run:r1", {"workspace": "ws"})
        await replicated.append("ws", "r1", [NewEvent(type="run_queued")], 0, enqueue=job)
    finally:
        await replicated.close()
    log = f"{store.prefix}:{{w:ws}}:log"
    jobs = store._queue().enqueue_keys(job)[0]
    for key, command in [(log, "XLEN"), (jobs, "HLEN")]:
        assert [await _on_replica(loopback_cluster, key, command)] == [1]


async def test_replicated_durability_without_a_replica_is_store_unavailable(
    tmp_path: Path,
) -> None:
    """One server with no replica: the write is made, but the caller is told it is not safe
    (a 503 for a submit), never a silent acknowledgement."""
    with RedisProcess(tmp_path) as server:
        lonely = RedisStore(f"{server.url}?durability=replicated&replica_wait_ms=100")
        await lonely.open()
        try:
            job = NewJob("q", "run:r1", {"workspace": "ws"})
            with pytest.raises(StoreUnavailable, match="no replica acknowledged"):
                await lonely.append("ws", "r1", [NewEvent(type="run_queued")], 0, enqueue=job)
            # Steps a worker appends are not waited for.
            await lonely.append("ws", "r1", [NewEvent(type="run_started")], 1)
        finally:
            await lonely.close()


async def _on_replica(cluster: RedisClusterProcess, key: str, command: str) -> int:
    primary = cluster.primary_of(key)
    client = redis.asyncio.Redis(port=primary.port, decode_responses=True)
    try:
        (replica_line,) = [
            line
            for line in str(await client.execute_command("CLUSTER", "NODES")).splitlines()
            if "slave" in line.split()[2]
            and line.split()[3] == await client.execute_command("CLUSTER", "MYID")
        ]
    finally:
        await client.aclose()
    port = int(replica_line.split()[1].split("@")[0].rsplit(":", 1)[1])
    replica = redis.asyncio.Redis(port=port, decode_responses=True)
    try:
        await replica.execute_command("READONLY")
        return int(await replica.execute_command(command, key))
    finally:
        await replica.aclose()


async def test_nodes_that_lost_their_scripts_get_them_again(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    """A replica promoted by a failover has none of the scripts its old primary had loaded:
    pipelined scripts (append with its job, the lease's peek round) load them and go on."""
    for node in loopback_cluster.nodes:
        client = redis.asyncio.Redis(port=node.port)
        await client.script_flush()
        await client.aclose()
    job = NewJob("q", "run:r1", {"workspace": "ws"})
    await store.append("ws", "r1", [NewEvent(type="run_queued")], 0, enqueue=job)
    (leased,) = await store.lease("q", "w", 1, 30)
    assert leased.id == "run:r1"


async def test_a_cross_slot_script_is_refused_so_the_check_is_real(
    loopback_cluster: RedisClusterProcess,
) -> None:
    """A node refuses a `#!lua` script that touches a key outside its declared keys' slot: a
    pass of the conformance suite above therefore means every script stays in one slot."""
    node = loopback_cluster.primary_of("{a}x")
    # Another slot on the same node: the refusal is the slot check, not "not my key".
    other = next(
        key
        for key in (f"{{b{i}}}y" for i in range(10_000))
        if key_slot(key.encode()) != key_slot(b"{a}x")
        and loopback_cluster.primary_of(key).port == node.port
    )
    client = redis.asyncio.Redis(port=node.port)
    try:
        with pytest.raises(redis.ResponseError, match="same slot"):
            await client.eval(
                f"#!lua\nredis.call('SET', KEYS[1], 1)\nreturn redis.call('SET', '{other}', 1)",
                1,
                "{a}x",
            )
    finally:
        await client.aclose()


async def test_one_workspace_keys_share_a_slot(
    store: RedisStore, loopback_cluster: RedisClusterProcess
) -> None:
    await store.append("ws-1", "r1", [NewEvent(type="run_queued")], 0)
    await store.ledger_init("ws-1", 100)
    await store.hold("ws-1", Hold("res-1", 10, 1))
    await store.hold("ws-1", Hold("waits", 95, 1))  # in the line
    await store.settle("ws-1", "res-1", 5, [0.01])
    pattern = f"{store.prefix}:{{w:ws-1}}:*"
    node = loopback_cluster.primary_of(pattern.removesuffix("*") + "log")
    client = redis.asyncio.Redis(port=node.port)
    try:
        keys = [k async for k in client.scan_iter(match=pattern)]
    finally:
        await client.aclose()
    # log, head, versions, run index, open runs, ledger, settled hold, waiting line
    assert len(keys) >= 8
    assert len({key_slot(k) for k in keys}) == 1
