"""Operations endpoints: `GET /metrics` and the admin API (dead letters, workers, drain, a
run's folded state). Both need an admin API key once keys exist; with no keys configured mezzo
serves loopback only, as one local tenant, and that tenant operates it."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from mezzo import keys, metrics
from mezzo.engine.snapshot import dump_state
from mezzo.errors import Conflict, RunNotFound, WorkerNotFound
from mezzo.governor.router import PRIORITY_RANK
from mezzo.keys import RUN_QUEUE
from mezzo.server.deps import Admin, App, JobId, RunId
from mezzo.server.status import documented
from mezzo.service import Mezzo

PRIORITY_NAME = {value: name for name, value in PRIORITY_RANK.items()}
DEAD_LIMIT = 10_000
ERRORS = documented(401, 403, 404, 409)


class DeadJobView(BaseModel):
    job: str
    queue: str
    workspace: str | None
    run: str | None
    attempts: int
    last_error: str | None
    failed_at: float


class WorkerInfo(BaseModel):
    name: str
    concurrency: int
    jobs: list[str]
    draining: bool
    drain_requested: bool
    counts: dict[str, int]
    last_beat: float
    age_s: float
    alive: bool


class RunStateView(BaseModel):
    run: str
    workspace: str
    tenant: str
    state: dict[str, Any]


router = APIRouter()


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={**ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def prometheus_metrics(_: Admin, mezzo: App) -> Response:
    """Prometheus text exposition of this process's metrics."""
    await refresh_gauges(mezzo)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/admin/dead", response_model=list[DeadJobView], responses=ERRORS, tags=["admin"])
async def dead(_: Admin, mezzo: App) -> list[DeadJobView]:
    return [_dead_view(job) for job in await mezzo.store.dead_letters(RUN_QUEUE, DEAD_LIMIT)]


@router.post(
    "/v1/admin/dead/{job_id}/requeue",
    response_model=DeadJobView,
    responses=ERRORS,
    tags=["admin"],
)
async def requeue(job_id: JobId, _: Admin, mezzo: App) -> DeadJobView:
    letters = {job.id: job for job in await mezzo.store.dead_letters(RUN_QUEUE, DEAD_LIMIT)}
    if job_id not in letters or not await mezzo.store.requeue_dead(RUN_QUEUE, job_id):
        raise Conflict(f"job {job_id!r} is not dead-lettered; only dead jobs can be requeued")
    return _dead_view(letters[job_id])


@router.get("/v1/admin/workers", response_model=list[WorkerInfo], responses=ERRORS, tags=["admin"])
async def workers(_: Admin, mezzo: App) -> list[WorkerInfo]:
    found = await mezzo.store.kv_scan(keys.WORKER, limit=10_000)
    return [await _worker_info(mezzo, value) for _, value in found]


@router.post(
    "/v1/admin/workers/{name}/drain",
    response_model=WorkerInfo,
    status_code=202,
    responses=ERRORS,
    tags=["admin"],
)
async def drain(name: str, _: Admin, mezzo: App) -> WorkerInfo:
    """Ask a worker to take no new jobs and finish those in flight (within one heartbeat)."""
    value = await mezzo.store.kv_get(keys.worker(name))
    if value is None:
        raise WorkerNotFound(f"no worker named {name!r}; GET /v1/admin/workers lists them")
    await mezzo.store.kv_put(keys.drain(name), {"requested_at": time.time()})
    return await _worker_info(mezzo, value)


@router.get(
    "/v1/admin/runs/{run}/state", response_model=RunStateView, responses=ERRORS, tags=["admin"]
)
async def run_state(run: RunId, _: Admin, mezzo: App) -> RunStateView:
    owner = await mezzo.run_owner(run)
    if owner is None or mezzo.engine is None:
        raise RunNotFound(f"run {run!r} not found")
    state = await mezzo.engine.load(owner.id, run)
    return RunStateView(
        run=run, workspace=owner.public_id, tenant=owner.tenant, state=dump_state(state)
    )


def _dead_view(job: Any) -> DeadJobView:
    return DeadJobView(
        job=job.id,
        queue=job.queue,
        workspace=job.payload.get("workspace"),
        run=job.payload.get("run"),
        attempts=job.attempts,
        last_error=job.last_error,
        failed_at=job.failed_at,
    )


async def _worker_info(mezzo: Mezzo, value: dict[str, Any]) -> WorkerInfo:
    name = str(value["name"])
    age = max(0.0, time.time() - float(value["ts"]))
    return WorkerInfo(
        name=name,
        concurrency=int(value.get("concurrency", 0)),
        jobs=list(value.get("jobs", [])),
        draining=bool(value.get("draining")),
        drain_requested=await mezzo.store.kv_get(keys.drain(name)) is not None,
        counts=dict(value.get("counts", {})),
        last_beat=float(value["ts"]),
        age_s=round(age, 3),
        alive=age < 3 * float(value.get("beat_s", 2.0)),
    )


async def refresh_gauges(mezzo: Mezzo) -> None:
    """Set the gauges read from the store and this process's state, at scrape time."""
    depth = await mezzo.store.queue_depth(RUN_QUEUE)
    oldest = await mezzo.store.queue_oldest(RUN_QUEUE)
    now = time.time()
    for priority, name in PRIORITY_NAME.items():
        metrics.queue_depth.labels(name).set(depth.get(priority, 0))
        since = oldest.get(priority)
        metrics.queue_age.labels(name).set(max(0.0, now - since) if since is not None else 0.0)
    metrics.dead_letters.set(len(await mezzo.store.dead_letters(RUN_QUEUE, DEAD_LIMIT)))
    metrics.workers_in_flight.set(len(mezzo.pool.in_flight) if mezzo.pool else 0)
    if mezzo.governor is not None:
        for key, breaker in list(mezzo.governor.breakers.items()):
            metrics.breaker_state.labels(key).set(metrics.BREAKER_VALUE[str(breaker.state)])
