"""The Lua scripts of the Redis store, read from `redis_lua/` and registered on a client.

Each script runs atomically inside Redis. A script `x.lua` is prefixed by the `*_lib.lua`
libraries it uses (shared helpers and the meaning of KEYS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

# Each script with the libraries it is prefixed by, in order.
_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{
        name: ("queue_lib",)
        for name in (
            "enqueue",
            "lease",
            "peek",
            "extend",
            "ack",
            "retry",
            "release",
            "requeue_dead",
        )
    },
    "ledger_init": ("ledger_lib",),
    "ledger_add": ("ledger_lib",),
    "release_hold": ("ledger_lib",),
    "hold": ("ledger_lib", "log_lib"),
    "settle": ("ledger_lib", "log_lib"),
    "acquire": ("rate_lib",),
    "block_until": ("rate_lib",),
    "append": ("log_lib",),
    "read_run": (),
    "trim": (),
    "kv": (),
}


def _source(name: str) -> str:
    return (files("mezzo.store") / "redis_lua" / f"{name}.lua").read_text(encoding="utf-8")


def script_sources(*, one_slot: bool = False) -> dict[str, str]:
    """Every script's full source by name. `one_slot` (Redis ≥ 7) adds the `#!lua` shebang, under
    which a Cluster node refuses a script that touches a key outside its declared keys' slot."""
    prelude = "#!lua\n" if one_slot else ""
    return {
        name: prelude + "".join(_source(lib) + "\n" for lib in libraries) + _source(name)
        for name, libraries in _SCRIPTS.items()
    }


@dataclass(frozen=True, slots=True)
class Scripts:
    enqueue: AsyncScript
    lease: AsyncScript
    peek: AsyncScript
    extend: AsyncScript
    ack: AsyncScript
    retry: AsyncScript
    release: AsyncScript
    requeue_dead: AsyncScript
    ledger_init: AsyncScript
    ledger_add: AsyncScript
    hold: AsyncScript
    settle: AsyncScript
    release_hold: AsyncScript
    acquire: AsyncScript
    block_until: AsyncScript
    append: AsyncScript
    read_run: AsyncScript
    trim: AsyncScript
    kv: AsyncScript


def register_scripts(client: Redis, *, one_slot: bool = False) -> Scripts:
    """Scripts bound to `client`; each loads itself (EVALSHA, then SCRIPT LOAD on NOSCRIPT)."""
    sources = script_sources(one_slot=one_slot)
    return Scripts(**{name: client.register_script(src) for name, src in sources.items()})


async def pipelined(
    pipe: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int], *, cluster: bool
) -> None:
    """Queue `script` on a pipeline. A Cluster pipeline sends `EVALSHA` and leaves a `NOSCRIPT`
    (a node that never loaded the script: a replica promoted by a failover) to the caller, who
    cannot tell which of the pipeline's commands to send again; there the body goes (`EVAL`),
    which each node caches by its digest."""
    if cluster:
        pipe.eval(script.script, len(keys), *keys, *args)
    else:
        await script(keys, args, client=pipe)
