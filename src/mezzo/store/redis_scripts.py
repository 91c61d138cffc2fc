"""The Lua scripts of the Redis store, read from `redis_lua/` and registered on a client.

Each script runs atomically inside Redis. A script `x.lua` is prefixed by the `*_lib.lua`
libraries it uses (shared helpers and the meaning of KEYS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

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


def pipelined(
    pipe: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]
) -> None:
    """Queue `script` on `pipe` as a bare `EVALSHA`, for `execute_pipeline`. Sent as a raw
    command: redis-py before 8 blocks the `evalsha` method of its Cluster pipelines (it cannot
    load a script there), though it routes the command by its keys like any other."""
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


async def execute_pipeline(
    client: Any, build: Callable[[Any], None], scripts: Sequence[AsyncScript]
) -> list[Any]:
    """Build a pipeline with `build` and run it. A node that lacks a script (a new server, a
    replica a failover promoted) answers `NOSCRIPT`; then `scripts` are loaded (on a Cluster,
    on every primary) and the pipeline runs once more. So a pipeline built here holds
    commands that may run twice when its script did not run: one script call beside
    idempotent commands, or scripts whose repetition is harmless.

    redis-py's own pipelines would check `SCRIPT EXISTS` before every run (one round trip
    more), and its Cluster pipelines leave `NOSCRIPT` to the caller."""
    for attempt in (1, 2):
        async with client.pipeline(transaction=False) as pipe:
            build(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
        for script in scripts:
            await client.script_load(script.script)
    raise AssertionError("unreachable")
