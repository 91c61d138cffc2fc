"""Where a Redis store lives, read from its URL: one server or a Cluster, and mezzo's options.

One URL says everything, so `mezzo serve`, `mezzo worker` and the sandbox worker need no other
flag and cannot disagree:

- `redis://[[user]:password@]host:port/db`, `rediss://…`, `unix:///path`: one server (a primary
  behind Sentinel or a managed endpoint included); the usual redis-py URL forms.
- `redis+cluster://[[user]:password@]host:port[,host:port…]` (`rediss+cluster://` for TLS): a
  Redis Cluster, discovered from any seed that answers.

mezzo's own query parameters, taken off before redis-py sees the URL:

- `partitions=N`: queue partitions (`docs/redis.md`, "Queue partitions"); when absent, what the
  deployment stored at its first open, else 16 on a Cluster and 1 on one server.
- `durability=replicated`: a write that must survive a failover (a run's acceptance) is
  acknowledged only after a replica has it (`WAIT`); `async` (the default) does not wait.
- `replica_wait_ms=M`: how long `replicated` waits for a replica (default 1000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from mezzo.store.redis_server import RedisConfigError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
MAX_PARTITIONS = 1024
DEFAULT_REPLICA_WAIT_MS = 1000

Durability = Literal["async", "replicated"]


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed store URL. `redis_url` is what redis-py gets for one server (mezzo's options
    removed); `seeds` are a Cluster's seed nodes."""

    url: str
    where: str
    cluster: bool
    redis_url: str
    seeds: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False
    partitions: int | None = None
    durability: Durability = "async"
    replica_wait_ms: int = DEFAULT_REPLICA_WAIT_MS


def describe_url(url: str) -> str:
    """The URL without its password or options, for messages."""
    try:
        parts = urlsplit(url)
        if parts.scheme in CLUSTER_SCHEMES:
            hosts = parts.netloc.rpartition("@")[2]
            return f"{parts.scheme}://{hosts}"
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_target(url: str) -> RedisTarget:
    """The target a URL names; `RedisConfigError` with a message a person can act on."""
    where = describe_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RedisConfigError(f"bad Redis URL {where}: {exc}") from exc
    if parts.scheme not in SINGLE_SCHEMES + CLUSTER_SCHEMES:
        raise RedisConfigError(
            f"not a Redis URL: {where!r} (want redis://host:port/db, rediss://..., "
            "unix:///path or redis+cluster://host:port[,host:port...])"
        )
    ours, theirs = _split_query(parts.query, where)
    partitions, durability, replica_wait_ms = _options(ours, where)
    if parts.scheme in SINGLE_SCHEMES:
        _check_single(parts.scheme, url, where)
        redis_url = urlunsplit(parts._replace(query=urlencode(theirs)))
        return RedisTarget(
            url,
            where,
            False,
            redis_url,
            partitions=partitions,
            durability=durability,
            replica_wait_ms=replica_wait_ms,
        )
    if theirs:
        names = ", ".join(sorted(name for name, _ in theirs))
        raise RedisConfigError(
            f"bad Redis URL {where}: a Cluster URL takes only partitions, durability and "
            f"replica_wait_ms, not {names}"
        )
    if parts.path.strip("/") not in ("", "0"):
        raise RedisConfigError(f"bad Redis URL {where}: a Cluster has only database 0")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    return RedisTarget(
        url,
        where,
        True,
        "",
        seeds=_seeds(hosts, where),
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=parts.scheme == "rediss+cluster",
        partitions=partitions,
        durability=durability,
        replica_wait_ms=replica_wait_ms,
    )


def _split_query(query: str, where: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ("partitions", "durability", "replica_wait_ms"):
            if name in ours:
                raise RedisConfigError(f"bad Redis URL {where}: {name} is given twice")
            ours[name] = value
        else:
            theirs.append((name, value))
    return ours, theirs


def _options(ours: dict[str, str], where: str) -> tuple[int | None, Durability, int]:
    """(partitions, durability, replica_wait_ms) from mezzo's query parameters."""
    partitions = None
    if "partitions" in ours:
        partitions = _bounded_int(ours["partitions"], "partitions", MAX_PARTITIONS, where)
    asked = ours.get("durability", "async")
    durability: Durability
    if asked == "async":
        durability = "async"
    elif asked == "replicated":
        durability = "replicated"
    else:
        raise RedisConfigError(
            f"bad Redis URL {where}: durability must be 'async' or 'replicated', got {asked!r}"
        )
    replica_wait_ms = DEFAULT_REPLICA_WAIT_MS
    if "replica_wait_ms" in ours:
        replica_wait_ms = _bounded_int(ours["replica_wait_ms"], "replica_wait_ms", 60_000, where)
    return partitions, durability, replica_wait_ms


def _bounded_int(value: str, name: str, most: int, where: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise RedisConfigError(
            f"bad Redis URL {where}: {name} must be a whole number from 1 to {most}, got {value!r}"
        )
    return int(value)


def _seeds(hosts: str, where: str) -> tuple[tuple[str, int], ...]:
    seeds = []
    for seed in hosts.split(","):
        host, colon, port = seed.strip().rpartition(":")
        if not colon:
            host, port = port, "6379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisConfigError(
                f"bad Redis URL {where}: want host:port[,host:port...], got {seed!r}"
            )
        seeds.append((host, int(port)))
    return tuple(seeds)


def _check_single(scheme: str, url: str, where: str) -> None:
    if scheme == "unix":
        return
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise RedisConfigError(f"bad Redis URL {where}: {exc}") from exc
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise RedisConfigError(
            f"bad Redis URL {where}: the path must be a database number, got {database!r}"
        )
