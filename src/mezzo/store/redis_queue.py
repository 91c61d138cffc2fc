"""The Redis store's queues, each split into N partitions so a Cluster can spread them.

A partition is one full queue of its own (jobs, ready, delayed, leased, dead letters, fencing
tokens; see `redis_lua/queue_lib.lua`) under one hash tag, so every queue script runs in one
slot. A job's partition is a stable hash of its workspace (the payload's `workspace`, else its
id): one workspace's jobs share a partition and keep their order, and a job's partition can be
told again from the job alone, which is how extend, ack, retry and release find it.

Leasing across partitions: one pipelined round asks every partition for its best ready job
(`peek.lua`, which first moves due and lapsed jobs into line, as a lease does), then leases
from the partition whose best job is best, then the next, until `n` are taken. Priority is
strict within a partition and approximate across: a batch of `n` may take a partition's
second-best job before another partition's best. Ties go to a random partition. With one
partition a lease is one script, as before partitions existed.

The number of partitions is a property of the deployment, stored at its first open
(`<prefix>:queue-partitions`): a job's partition must not change while it waits.
Partition 0 keeps the key names of the unpartitioned queue (`{q:<queue>}`), so a deployment
that upgrades with one partition finds its queued jobs where they were.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import random
import time
import zlib
from collections.abc import Sequence
from typing import Any

from mezzo.store.base import DeadJob, Job, NewJob
from mezzo.store.redis_scripts import Scripts, execute_pipeline, pipelined
from mezzo.store.redis_server import RedisConfigError

MAX_PRIORITY = 1000
CLUSTER_PARTITIONS = 16
SINGLE_PARTITIONS = 1


def partition_of(job_id: str, payload: dict[str, Any], partitions: int) -> int:
    """The partition of a job: CRC-32 of its workspace (or id), stable across processes."""
    workspace = payload.get("workspace")
    key = workspace if isinstance(workspace, str) else job_id
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


async def agreed_partitions(
    client: Any, prefix: str, asked: int | None, default: int, where: str
) -> int:
    """The deployment's number of partitions: stored by the first process to open it (`asked`
    or `default`), then the same for everyone. A different number asked for is refused."""
    key = f"{prefix}:queue-partitions"
    stored = await client.get(key)
    if stored is None:
        await client.set(key, asked or default, nx=True)
        stored = await client.get(key)
    count = int(stored)
    if asked is not None and asked != count:
        raise RedisConfigError(
            f"Redis at {where}: this deployment's queues have {count} partitions (stored at its "
            f"first open), the URL asks for {asked}. Drop partitions= from the URL, or change it "
            f"on an empty queue: stop the API nodes, let the workers drain the queue to depth 0, "
            f"stop them, delete the key {key!r}, start again (docs/redis.md)."
        )
    return count


class RedisQueues:
    """Queue operations over `partitions` partitions; the caller translates Redis errors."""

    def __init__(self, client: Any, scripts: Scripts, prefix: str, partitions: int) -> None:
        self._client = client
        self._scripts = scripts
        self.prefix = prefix
        self.partitions = partitions

    # ---- keys

    def keys(self, queue: str, partition: int) -> list[str]:
        """The keys of one partition, in the order of `queue_lib.lua`."""
        name = queue if partition == 0 else f"{queue}:{partition}"
        tag = f"{self.prefix}:{{q:{name}}}"
        return [
            f"{tag}:jobs",
            f"{tag}:ready",
            f"{tag}:delayed",
            f"{tag}:leased",
            f"{tag}:depth",
            f"{tag}:dead",
            f"{tag}:dead-jobs",
            f"{tag}:tokens",
            f"{tag}:wake",
        ]

    def wake_pattern(self) -> str:
        return f"{self.prefix}:{{q:*}}:wake"

    def _job_keys(self, queue: str, job_id: str, payload: dict[str, Any]) -> list[str]:
        return self.keys(queue, partition_of(job_id, payload, self.partitions))

    def enqueue_keys(self, job: NewJob) -> list[str]:
        return self._job_keys(job.queue, job.id, job.payload)

    # ---- jobs

    def enqueue_args(self, job: NewJob, delay: float) -> list[str | int]:
        if abs(job.priority) > MAX_PRIORITY:
            raise ValueError(f"priority must be within ±{MAX_PRIORITY}, got {job.priority}")
        body = json.dumps(job.payload, separators=(",", ":"))
        return [job.id, body, job.priority, repr(delay), job.max_attempts]

    async def enqueue(self, job: NewJob, delay: float) -> bool:
        args = self.enqueue_args(job, delay)
        return bool(await self._scripts.enqueue(self.enqueue_keys(job), args))

    def enqueue_on(self, pipe: Any, job: NewJob, delay: float) -> None:
        """Queue the enqueue on `pipe` (see `execute_pipeline`)."""
        pipelined(
            pipe, self._scripts.enqueue, self.enqueue_keys(job), self.enqueue_args(job, delay)
        )

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]:
        if n <= 0:
            return []
        args: list[str | int] = [worker, 0, repr(lease_s)]
        if self.partitions == 1:
            args[1] = n
            return self._jobs(queue, await self._scripts.lease(self.keys(queue, 0), args), lease_s)
        jobs: list[Job] = []
        for partition, ready in await self._best_first(queue):
            args[1] = min(n - len(jobs), ready)
            leased = await self._scripts.lease(self.keys(queue, partition), args)
            jobs += self._jobs(queue, leased, lease_s)
            if len(jobs) >= n:
                break
        return jobs

    async def _best_first(self, queue: str) -> list[tuple[int, int]]:
        """(partition, jobs ready) of the partitions with a job ready, best job first."""

        def peek_all(pipe: Any) -> None:
            for partition in range(self.partitions):
                pipelined(pipe, self._scripts.peek, self.keys(queue, partition), [])

        peeks = await execute_pipeline(self._client, peek_all, [self._scripts.peek])
        ready = [
            (float(best), random.random(), partition, int(count))
            for partition, (count, best) in enumerate(peeks)
            if int(count) > 0 and best != ""
        ]
        return [(partition, count) for _, _, partition, count in sorted(ready)]

    @staticmethod
    def _jobs(queue: str, leased: Sequence[str], lease_s: float) -> list[Job]:
        until = time.time() + lease_s
        jobs = []
        for raw in leased:
            row = json.loads(raw)
            jobs.append(
                Job(
                    id=row["id"],
                    queue=queue,
                    payload=json.loads(row["p"]),
                    priority=int(row["pr"]),
                    attempts=int(row["a"]),
                    max_attempts=int(row["m"]),
                    token=int(row["t"]),
                    lease_until=until,
                    last_error=row.get("e"),
                )
            )
        return jobs

    async def extend(self, job: Job, lease_s: float) -> bool:
        keys = self._job_keys(job.queue, job.id, job.payload)
        return bool(await self._scripts.extend(keys, [job.id, job.token, repr(lease_s)]))

    async def ack(self, job: Job) -> bool:
        keys = self._job_keys(job.queue, job.id, job.payload)
        return bool(await self._scripts.ack(keys, [job.id, job.token]))

    async def retry(self, job: Job, delay_s: float, error: str) -> int:
        keys = self._job_keys(job.queue, job.id, job.payload)
        return int(await self._scripts.retry(keys, [job.id, job.token, repr(delay_s), error]))

    async def release(self, job: Job, delay_s: float) -> bool:
        keys = self._job_keys(job.queue, job.id, job.payload)
        return bool(await self._scripts.release(keys, [job.id, job.token, repr(delay_s)]))

    # ---- views over every partition

    async def _each(self, queue: str, *commands: tuple[Any, ...]) -> list[list[Any]]:
        """Run `commands` (name, key index into `keys`, args...) on every partition in one
        pipelined round; the replies per partition."""
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in range(self.partitions):
                keys = self.keys(queue, partition)
                for name, key, *args in commands:
                    pipe.execute_command(name, keys[key], *args)
            replies = await pipe.execute()
        width = len(commands)
        return [replies[i : i + width] for i in range(0, len(replies), width)]

    async def depth(self, queue: str) -> dict[int, int]:
        total: dict[int, int] = {}
        for (counts,) in await self._each(queue, ("HGETALL", 4)):
            pairs = _pairs(counts)
            for priority, n in pairs.items():
                total[int(priority)] = total.get(int(priority), 0) + int(n)
        return {priority: n for priority, n in total.items() if n > 0}

    async def oldest(self, queue: str) -> dict[int, float]:
        """From the ready sets (score `-priority * 1e13 + not_before * 1000`, queue_lib.lua) and
        any due job still in a delayed set (it moves to ready at the next lease)."""
        now = time.time()
        bands = list(range(-2, 5))
        commands: list[tuple[Any, ...]] = [
            ("ZRANGEBYSCORE", 2, "-inf", repr(now), "LIMIT", 0, 1000)
        ]
        for priority in bands:
            low = -priority * 1e13
            commands.append(
                ("ZRANGEBYSCORE", 1, repr(low), f"({low + 1e13!r}", "WITHSCORES", "LIMIT", 0, 1)
            )
        oldest: dict[int, float] = {}
        for partition, (due, *firsts) in enumerate(await self._each(queue, *commands)):
            if due:
                rows = await self._client.hmget(self.keys(queue, partition)[0], due)
                for raw in rows:
                    if raw is not None:
                        job = json.loads(raw)
                        priority = int(job["pr"])
                        oldest[priority] = min(oldest.get(priority, now), float(job["nb"]))
            for priority, first in zip(bands, firsts, strict=True):
                if first:
                    since = (float(first[1]) - -priority * 1e13) / 1000
                    oldest[priority] = min(oldest.get(priority, since), since)
        return oldest

    async def dead_letters(self, queue: str, limit: int) -> list[DeadJob]:
        if limit <= 0:
            return []
        listed = await self._each(queue, ("ZRANGE", 5, 0, limit - 1, "WITHSCORES"))
        entries = heapq.nsmallest(
            limit,
            (
                (float(score), partition, job_id)
                for partition, (flat,) in enumerate(listed)
                for job_id, score in zip(flat[::2], flat[1::2], strict=True)
            ),
        )
        dead = []
        for _, partition, job_id in entries:
            raw = await self._client.hget(self.keys(queue, partition)[6], job_id)
            if raw is None:
                continue
            row = json.loads(raw)
            dead.append(
                DeadJob(
                    id=job_id,
                    queue=queue,
                    payload=json.loads(row["p"]),
                    attempts=int(row["a"]),
                    last_error=row.get("e"),
                    failed_at=float(row["f"]),
                )
            )
        return dead

    async def requeue_dead(self, queue: str, job_id: str) -> bool:
        """Tried on every partition at once: only the one holding the dead job has it."""
        found = await asyncio.gather(
            *(
                self._scripts.requeue_dead(self.keys(queue, partition), [job_id])
                for partition in range(self.partitions)
            )
        )
        return any(int(one) for one in found)


def _pairs(flat: Any) -> dict[str, str]:
    """An HGETALL reply as a dict, whether redis-py already made it one (a plain pipeline) or
    not (a raw `execute_command` on some clients)."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))
