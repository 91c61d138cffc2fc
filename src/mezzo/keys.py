"""Every name mezzo gives the store's shared spaces, in one place (as arq's `constants.py`).

The store keeps events, the queue, the token ledger and the run index in structures of its own;
what the rest of mezzo names is here: keys of the key-value space, keys of the rate limiter,
and queue and job names. A key is always built by a function of this module, never inline, so a
reader can see the whole schema at once; `docs/architecture.md` lists it as `python -m
mezzo.keys` prints it (tests/server/test_keys.py keeps the two equal). The store's own
structures (event logs, the queue, the ledger, the run index) are named inside the store.

Ids inside a key (workspace, run) never contain `/` (see `mezzo.bounds`), so a prefix scan of
`tenant/{tenant}/` is exactly one tenant's workspaces.

A workspace's id is its tenant's own; everything the store keeps for a workspace (its record,
event log, ledger, files, run index entries) is under its *key*, `workspace_key(tenant, id)`.
Workspaces made before ids were per tenant keep their id as their key (`mezzo.bounds`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from mezzo.bounds import TENANT_DIGEST_CHARS

# ---- key-value space

WORKSPACE = "workspace/"
TENANT = "tenant/"
API_KEY = "apikey/"
SUSPENDED = "suspended/"
SNAPSHOT = "snapshot/"
WORKER = "worker/"
DRAIN = "drain/"
GATEWAY_RESPONSE = "gateway/response/"
SANDBOX_RESULT = "sandbox:result:"

# ---- rate limiter (GCRA) keys

PROVIDER = "provider:"
THROTTLE = "throttle:"
API_CLIENT = "api:"

# ---- queues and jobs

RUN_QUEUE = "runs"
SANDBOX_QUEUE = "sandbox"
RUN_JOB = "run:"


def workspace_key(tenant: str, workspace: str) -> str:
    """The key of `tenant`'s workspace `workspace`: the tenant's digest, `~`, the id."""
    digest = hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{digest[:TENANT_DIGEST_CHARS]}~{workspace}"


def workspace(key: str) -> str:
    """Where a workspace's record is, by its key (`workspace_key`)."""
    return f"{WORKSPACE}{key}"


def tenant_workspaces(tenant: str) -> str:
    """The prefix under which a tenant's workspaces are indexed."""
    return f"{TENANT}{tenant}/"


def tenant_workspace(tenant: str, workspace: str) -> str:
    return f"{tenant_workspaces(tenant)}{workspace}"


def api_key(digest: str) -> str:
    return f"{API_KEY}{digest}"


def suspended_runs(workspace: str) -> str:
    """The prefix under which a workspace's suspended runs are listed."""
    return f"{SUSPENDED}{workspace}/"


def suspended(workspace: str, run: str) -> str:
    return f"{suspended_runs(workspace)}{run}"


def snapshot(run: str) -> str:
    return f"{SNAPSHOT}{run}"


def worker(name: str) -> str:
    return f"{WORKER}{name}"


def drain(name: str) -> str:
    return f"{DRAIN}{name}"


def gateway_response(response_id: str) -> str:
    return f"{GATEWAY_RESPONSE}{response_id}"


def sandbox_result(job_id: str) -> str:
    return f"{SANDBOX_RESULT}{job_id}"


def provider_limit(provider_key: str) -> str:
    return f"{PROVIDER}{provider_key}"


def throttle_limit(workspace: str, provider_key: str) -> str:
    return f"{THROTTLE}{workspace}:{provider_key}"


def api_client_limit(client: str) -> str:
    return f"{API_CLIENT}{client}"


def run_job(run: str) -> str:
    return f"{RUN_JOB}{run}"


def last_part(key: str) -> str:
    """The id a key ends with: `tenant/acme/ws1` → `ws1`."""
    return key.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Entry:
    space: Literal["kv", "limiter", "queue", "job"]
    pattern: str
    holds: str


SCHEMA: tuple[Entry, ...] = (
    Entry(
        "kv",
        workspace("{key}"),
        "a workspace's record: id, tenant, config, throttle rate (key: `{tenant digest}~{id}`)",
    ),
    Entry("kv", tenant_workspace("{tenant}", "{id}"), "index of a tenant's workspaces: id, key"),
    Entry("kv", api_key("{sha256}"), "an API key's tenant and admin flag (only the hash is kept)"),
    Entry("kv", suspended("{key}", "{run}"), "a run waiting for a budget top-up"),
    Entry("kv", snapshot("{run}"), "a run's folded state, so a load folds only later events"),
    Entry("kv", worker("{name}"), "a worker's heartbeat: in-flight jobs, counts, time"),
    Entry("kv", drain("{name}"), "an operator's request that a worker drain"),
    Entry("kv", gateway_response("{id}"), "a stored gateway response (previous_response_id)"),
    Entry("kv", sandbox_result("{job}"), "the result of a sandbox job run by a sandbox worker"),
    Entry("limiter", provider_limit("{provider}:{model}"), "a provider's RPM/TPM, shared"),
    Entry(
        "limiter",
        throttle_limit("{key}", "{provider}:{model}"),
        "a throttled workspace's share of a provider's TPM",
    ),
    Entry("limiter", api_client_limit("{client}"), "the per-API-key (or address) request limit"),
    Entry("queue", RUN_QUEUE, "jobs that advance runs"),
    Entry("queue", SANDBOX_QUEUE, "code to run in the sandbox, for sandbox workers"),
    Entry("job", run_job("{run}"), "the one job of a run: enqueueing it twice runs it once more"),
)


SPACE_NAMES = {"kv": "key-value", "limiter": "rate limiter", "queue": "queue", "job": "job id"}


def markdown() -> str:
    """The schema as the table in docs/architecture.md."""
    rows = ["| space | key | holds |", "|---|---|---|"]
    rows += [f"| {SPACE_NAMES[e.space]} | `{e.pattern}` | {e.holds} |" for e in SCHEMA]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
