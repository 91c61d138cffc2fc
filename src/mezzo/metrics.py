"""Prometheus metrics: one registry per process, metric objects with bounded label sets.

Most figures come from the events this process appends (`observe_events`): the event log is
the one record of what happened, so counting it needs no hooks in the engine. Labels are
status, priority, route, provider key, event kind: all bounded by configuration. A run id is
never a label; a workspace is one only through `BoundedLabel`, which gives the first
`MAX_WORKSPACE_LABELS` workspaces seen by the process their own value and the rest `_other`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from mezzo.protocol import Event

REGISTRY = CollectorRegistry(auto_describe=True)
MAX_WORKSPACE_LABELS = 100
OVERFLOW_LABEL = "_other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TERMINAL_EVENTS = {"completed", "failed", "cancelled"}


class BoundedLabel:
    """Maps unbounded values (workspace ids) to at most `limit` label values plus `_other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OVERFLOW_LABEL


workspace_label = BoundedLabel(MAX_WORKSPACE_LABELS)

runs = Counter(
    "mezzo_runs", "Runs that entered a status (queued or terminal).", ["status"], registry=REGISTRY
)
events_appended = Counter(
    "mezzo_events_appended", "Durable events appended by this process.", ["type"], registry=REGISTRY
)
queue_depth = Gauge(
    "mezzo_queue_depth", "Jobs waiting in the run queue.", ["priority"], registry=REGISTRY
)
queue_age = Gauge(
    "mezzo_queue_age_seconds",
    "How long the oldest due, unleased job of each priority has waited.",
    ["priority"],
    registry=REGISTRY,
)
dead_letters = Gauge(
    "mezzo_dead_letters", "Jobs in the run queue's dead-letter list.", registry=REGISTRY
)
jobs_leased = Counter("mezzo_jobs_leased", "Jobs leased by this process.", registry=REGISTRY)
jobs_reclaimed = Counter(
    "mezzo_jobs_reclaimed",
    "Jobs leased again after an earlier attempt (a lapsed lease or a retry).",
    registry=REGISTRY,
)
leases_lost = Counter(
    "mezzo_leases_lost", "Leases this process lost before it finished the job.", registry=REGISTRY
)
job_retries = Counter(
    "mezzo_job_retries", "Jobs given back to run again, spending an attempt.", registry=REGISTRY
)
jobs_dead_lettered = Counter(
    "mezzo_jobs_dead_lettered", "Jobs this process moved to the dead letters.", registry=REGISTRY
)
workers_in_flight = Gauge(
    "mezzo_worker_jobs_in_flight", "Jobs this process is working on now.", registry=REGISTRY
)
step_seconds = Histogram(
    "mezzo_step_seconds",
    "Duration of a step, from its call event to its result event (same process).",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
provider_seconds = Histogram(
    "mezzo_provider_call_seconds",
    "Model call latency, from model_call to its outcome, by route and provider:model.",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
provider_errors = Counter(
    "mezzo_provider_errors",
    "Failed model calls by route, provider:model and HTTP status.",
    ["route", "model", "status"],
    registry=REGISTRY,
)
provider_rate_limited = Counter(
    "mezzo_provider_rate_limited",
    "Model calls that waited on a rate limit: status 429 from the provider, or local pacing.",
    ["route", "model", "source"],
    registry=REGISTRY,
)
routed = Counter(
    "mezzo_routed", "Calls sent to a fallback route, by reason.", ["reason"], registry=REGISTRY
)
tokens_reserved = Counter(
    "mezzo_tokens_reserved",
    "Tokens held before model calls.",
    ["route", "workspace"],
    registry=REGISTRY,
)
tokens_committed = Counter(
    "mezzo_tokens_committed",
    "Tokens charged after model calls (the provider's reported usage).",
    ["route", "workspace"],
    registry=REGISTRY,
)
budget_alerts = Counter(
    "mezzo_budget_alerts", "Budget alert thresholds crossed.", ["threshold"], registry=REGISTRY
)
budget_exhausted = Counter(
    "mezzo_budget_exhausted", "Model calls refused for lack of budget.", registry=REGISTRY
)
suspensions = Counter("mezzo_suspensions", "Runs suspended.", registry=REGISTRY)
breaker_state = Gauge(
    "mezzo_breaker_state",
    "Circuit breaker per provider key: 0 closed, 1 half-open, 2 open.",
    ["key"],
    registry=REGISTRY,
)
subscribers = Gauge(
    "mezzo_subscribers", "Open event subscriptions.", ["transport"], registry=REGISTRY
)
sandbox_executions = Counter(
    "mezzo_sandbox_executions",
    "Sandboxed code runs (run_code) by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
http_requests = Counter(
    "mezzo_http_requests",
    "HTTP requests answered, by method and status class.",
    ["method", "status"],
    registry=REGISTRY,
)
requests_rate_limited = Counter(
    "mezzo_requests_rate_limited",
    "Requests refused with 429 by the per-key limit.",
    registry=REGISTRY,
)

BREAKER_VALUE = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


class _OpenCalls:
    """When each run's pending model call or server-side tool call began, in this process.

    Bounded: the oldest entries go first when a process starts more calls than it finishes.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._calls: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, key: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._calls[key] = (time.monotonic(), info)
            self._calls.move_to_end(key)
            while len(self._calls) > self.limit:
                self._calls.popitem(last=False)

    def finish(self, key: str) -> tuple[float, dict[str, Any]] | None:
        with self._lock:
            started = self._calls.pop(key, None)
        if started is None:
            return None
        return time.monotonic() - started[0], started[1]

    def peek(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            started = self._calls.get(key)
        return started[1] if started else None


_open = _OpenCalls()


def observe_events(events: Iterable[Event]) -> None:
    """Count what the appended events say happened."""
    for event in events:
        _observe(event)


def _observe(event: Event) -> None:
    data = event.data
    kind = event.type
    events_appended.labels(kind).inc()
    run = event.run or ""
    if kind == "run_queued":
        runs.labels("queued").inc()
    elif kind in TERMINAL_EVENTS:
        runs.labels(kind).inc()
        _open.finish(f"model:{run}")
    elif kind == "model_call":
        route = str(data.get("route", ""))
        model = f"{data.get('provider', '')}:{data.get('model', '')}"
        _open.start(f"model:{run}", {"route": route, "model": model})
        reserved = int(data.get("reserved_tokens") or 0)
        if reserved:
            tokens_reserved.labels(route, workspace_label(event.workspace)).inc(reserved)
    elif kind == "model_result":
        finished = _open.finish(f"model:{run}")
        usage = data.get("usage") or {}
        spent = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        route = finished[1]["route"] if finished else ""
        if finished:
            provider_seconds.labels(route, finished[1]["model"]).observe(finished[0])
            step_seconds.labels("model").observe(finished[0])
        if data.get("reservation"):
            tokens_committed.labels(route, workspace_label(event.workspace)).inc(spent)
    elif kind in ("retry", "failed") and data.get("status") is not None:
        finished = _open.finish(f"model:{run}")
        if finished:
            info = finished[1]
            provider_seconds.labels(info["route"], info["model"]).observe(finished[0])
            provider_errors.labels(info["route"], info["model"], str(data["status"])).inc()
    elif kind == "rate_limited":
        if data.get("status") == 429:
            finished = _open.finish(f"model:{run}")
            info = finished[1] if finished else {"route": "", "model": str(data.get("key", ""))}
            provider_rate_limited.labels(info["route"], info["model"], "provider_429").inc()
        else:
            source = "throttle" if data.get("key") == "throttle" else "local_limit"
            provider_rate_limited.labels("", str(data.get("key", "")), source).inc()
    elif kind == "routed":
        routed.labels(str(data.get("reason", ""))).inc()
    elif kind == "tool_call" and data.get("side") == "server":
        _open.start(f"tool:{data.get('call_id', '')}", {"name": data.get("name", "")})
    elif kind == "tool_result":
        finished = _open.finish(f"tool:{data.get('call_id', '')}")
        if finished:
            step_seconds.labels("tool").observe(finished[0])
        if data.get("name") == "run_code":
            sandbox_executions.labels(sandbox_outcome(data)).inc()
    elif kind == "budget_alert":
        budget_alerts.labels(str(data.get("threshold", ""))).inc()
    elif kind == "budget_exhausted":
        budget_exhausted.inc()
    elif kind == "suspended":
        suspensions.inc()


def sandbox_outcome(result: dict[str, Any]) -> str:
    """ok, nonzero_exit, timeout, killed or error, from a run_code tool result."""
    if result.get("is_error"):
        return "error"
    header = str(result.get("output", ""))[:80]
    if header.startswith("[exit code 0;"):
        return "ok"
    if header.startswith("[exit code"):
        return "nonzero_exit"
    if header.startswith("[timed out"):
        return "timeout"
    if header.startswith("[killed"):
        return "killed"
    return "error"
