"""The web dashboard: its static files at `/` and `/ui/...`, and the read-only system view it
draws (queue, dead letters, workers, provider breakers and limits). Dead letters and active runs
are the tenant's own; the queue's depth and the workers' counts are the whole server's, so only
an admin key (or the one local tenant of a server without keys) sees them."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from mezzo import tenants
from mezzo.errors import NotFound
from mezzo.governor.router import PRIORITY_RANK
from mezzo.keys import RUN_QUEUE
from mezzo.server.deps import App, JobId, Tenant, Who
from mezzo.server.status import documented
from mezzo.service import Mezzo

STATIC = Path(__file__).with_name("static")
PRIORITY_NAME = {value: name for name, value in PRIORITY_RANK.items()}
DEAD_SCAN_LIMIT = 10_000
ACTIVE_LIMIT = 1_000  # per workspace
ERRORS = documented(401, 404)


class DeadLetter(BaseModel):
    job: str
    workspace: str
    run: str
    attempts: int
    last_error: str | None
    failed_at: float


class WorkerView(BaseModel):
    name: str
    concurrency: int
    in_flight: int
    leased: int
    completed_jobs: int
    retried: int
    dead: int
    lost_leases: int


class ProviderView(BaseModel):
    key: str
    breaker: str
    retry_in_s: float
    rpm: float | None
    tpm: float | None
    learned_rpm: float | None
    learned_tpm: float | None


class SystemView(BaseModel):
    time: float
    # Whether the server-wide figures (queue depth, workers) are shown: an admin key's view.
    operator: bool
    queue_depth: dict[str, int] | None = Field(
        description="runs queued per priority, server-wide; null unless the key is an admin's"
    )
    dead_letters: list[DeadLetter]
    active_runs: dict[str, list[str]]
    workers: WorkerView | None = Field(
        description="this process's workers; null without workers or unless the key is an admin's"
    )
    providers: list[ProviderView]


router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


@router.get("/ui/{name:path}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        raise NotFound(f"no dashboard file {name!r}")
    return FileResponse(path, headers={"cache-control": "no-cache"})


@router.get("/v1/system", response_model=SystemView, responses=ERRORS, tags=["dashboard"])
async def system(who: Who, mezzo: App) -> SystemView:
    depth = await mezzo.store.queue_depth(RUN_QUEUE) if who.admin else None
    return SystemView(
        time=time.time(),
        operator=who.admin,
        queue_depth=None
        if depth is None
        else {
            PRIORITY_NAME.get(priority, str(priority)): count
            for priority, count in sorted(depth.items(), reverse=True)
        },
        dead_letters=await _dead_letters(mezzo, who.tenant),
        active_runs=await _active_runs(mezzo, who.tenant),
        workers=_workers(mezzo) if who.admin else None,
        providers=_providers(mezzo),
    )


@router.post(
    "/v1/system/dead/{job_id}/requeue",
    response_model=DeadLetter,
    responses=ERRORS,
    tags=["dashboard"],
)
async def requeue(job_id: JobId, who: Tenant, mezzo: App) -> DeadLetter:
    mine = {dead.job: dead for dead in await _dead_letters(mezzo, who)}
    if job_id not in mine or not await mezzo.store.requeue_dead(RUN_QUEUE, job_id):
        raise NotFound(f"no dead-lettered job {job_id!r}")
    return mine[job_id]


async def _dead_letters(mezzo: Mezzo, tenant: str) -> list[DeadLetter]:
    """Dead-lettered run jobs whose run belongs to `tenant`."""
    letters = []
    for dead in await mezzo.store.dead_letters(RUN_QUEUE, DEAD_SCAN_LIMIT):
        run = str(dead.payload.get("run", ""))
        owner = await mezzo.run_owner(run) if run else None
        if owner is None or owner.tenant != tenant:
            continue
        letters.append(
            DeadLetter(
                job=dead.id,
                workspace=owner.public_id,
                run=run,
                attempts=dead.attempts,
                last_error=dead.last_error,
                failed_at=dead.failed_at,
            )
        )
    return letters


async def _active_runs(mezzo: Mezzo, tenant: str) -> dict[str, list[str]]:
    """Unfinished runs by the tenant's id of their workspace: its workspaces' runs only, read
    per workspace (never a scan of every tenant's runs)."""
    active: dict[str, list[str]] = {}
    for workspace in await tenants.workspaces_of(mezzo.store, tenant):
        with contextlib.suppress(NotFound):
            key = (await mezzo.workspace_record(tenant, workspace)).id
            runs = await mezzo.store.active_runs(limit=ACTIVE_LIMIT, workspace=key)
            if runs:
                active[workspace] = [run for run, _ in runs]
    return active


def _workers(mezzo: Mezzo) -> WorkerView | None:
    pool = mezzo.pool
    if pool is None:
        return None
    stats = pool.stats
    return WorkerView(
        name=pool.name,
        concurrency=pool.concurrency,
        in_flight=len(pool._tasks),
        leased=stats.leased,
        completed_jobs=stats.completed_jobs,
        retried=stats.retried,
        dead=stats.dead,
        lost_leases=stats.lost_leases,
    )


def _providers(mezzo: Mezzo) -> list[ProviderView]:
    """Every provider key this process has called or has limits configured for."""
    governor = mezzo.governor
    breakers = governor.breakers if governor else {}
    learned = governor.learned if governor else {}
    configured = mezzo.settings.provider_limits
    now = time.time()
    views = []
    for key in sorted({*breakers, *learned, *configured}):
        breaker = breakers.get(key)
        limits = configured.get(key)
        current = learned[key].current(now) if key in learned else None
        views.append(
            ProviderView(
                key=key,
                breaker=str(breaker.state) if breaker else "closed",
                retry_in_s=round(breaker.retry_in(), 3) if breaker else 0.0,
                rpm=limits.rpm if limits else None,
                tpm=limits.tpm if limits else None,
                learned_rpm=current.rpm if current else None,
                learned_tpm=current.tpm if current else None,
            )
        )
    return views
