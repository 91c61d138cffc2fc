"""The Lua scripts of the Redis store, read from `redis_lua/` and registered on a client.

Each script runs atomically inside Redis. A script named `x.lua` of a family is prefixed by
that family's `*_lib.lua` (shared helpers and the meaning of KEYS).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_LIBRARIES = {
    "queue_lib": (
        "enqueue",
        "lease",
        "extend",
        "ack",
        "retry",
        "release",
        "requeue_dead",
    ),
    "ledger_lib": ("ledger_init", "ledger_add", "reserve", "commit", "release_reservation"),
    "rate_lib": ("acquire", "block_until"),
    "": ("append", "read_run", "trim", "kv"),
}


def _source(name: str) -> str:
    return (files("mezzo.store") / "redis_lua" / f"{name}.lua").read_text(encoding="utf-8")


def script_sources(*, one_slot: bool = False) -> dict[str, str]:
    """Every script's full source by name. `one_slot` (Redis ≥ 7) adds the `#!lua` shebang, under
    which a Cluster node refuses a script that touches a key outside its declared keys' slot."""
    sources: dict[str, str] = {}
    for library, names in _LIBRARIES.items():
        prelude = "#!lua\n" if one_slot else ""
        prelude += _source(library) + "\n" if library else ""
        for name in names:
            sources[name] = prelude + _source(name)
    return sources


@dataclass(frozen=True, slots=True)
class Scripts:
    enqueue: AsyncScript
    lease: AsyncScript
    extend: AsyncScript
    ack: AsyncScript
    retry: AsyncScript
    release: AsyncScript
    requeue_dead: AsyncScript
    ledger_init: AsyncScript
    ledger_add: AsyncScript
    reserve: AsyncScript
    commit: AsyncScript
    release_reservation: AsyncScript
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
