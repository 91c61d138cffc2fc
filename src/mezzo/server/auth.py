"""API keys, stored hashed, mapped to tenants. With no keys, mezzo serves one local tenant.

Looking a key up is on every request, so each process keeps what it read: a key's record (or
its absence) and whether any key exists are trusted for `ttl_s` (1 s), the same bound as a
workspace's throttle rate. A key created or revoked by another process (`mezzo keys create` beside
a running server) therefore takes effect everywhere within that long, and at once in a process
that did it through its own `Authenticator`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from mezzo import keys
from mezzo.errors import Forbidden, Unauthorized
from mezzo.store.base import Store

OPEN_TENANT = "local"
KEY_PREFIX = "mz_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a tenant, and whether its key may operate the server."""

    tenant: str
    admin: bool


LOCAL = Principal(OPEN_TENANT, admin=True)


async def create_key(store: Store, tenant: str, name: str = "", admin: bool = False) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await store.kv_put(
        keys.api_key(hash_key(key)),
        {"tenant": tenant, "name": name, "admin": admin, "created_at": time.time()},
    )
    return key


async def revoke_key(store: Store, key: str) -> bool:
    """Delete a key; True if it existed. Other processes refuse it within their `ttl_s`."""
    return await store.kv_delete(keys.api_key(hash_key(key)))


async def keys_configured(store: Store) -> bool:
    return bool(await store.kv_scan(keys.API_KEY, limit=1))


def presented_key(authorization: str | None, token: str | None = None) -> str:
    """The key a request presents: the bearer token, else the `token` query parameter."""
    presented = token
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized("use 'Authorization: Bearer <API key>'")
        presented = value.strip()
    if not presented:
        raise Unauthorized("an API key is required: 'Authorization: Bearer <API key>'")
    return presented


class Authenticator:
    """Resolves a presented key to a `Principal`, through a per-process cache (see the module)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 1.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.size = size
        self._clock = clock
        self._required: tuple[bool, float] | None = None
        self._keys: dict[str, tuple[Principal | None, float]] = {}

    async def required(self) -> bool:
        now = self._clock()
        if self._required is None or now - self._required[1] >= self.ttl_s:
            self._required = (await keys_configured(self.store), now)
        return self._required[0]

    async def principal(self, authorization: str | None, token: str | None = None) -> Principal:
        if not await self.required():
            return LOCAL
        digest = hash_key(presented_key(authorization, token))
        now = self._clock()
        cached = self._keys.get(digest)
        if cached is None or now - cached[1] >= self.ttl_s:
            record = await self.store.kv_get(keys.api_key(digest))
            found = Principal(str(record["tenant"]), bool(record.get("admin"))) if record else None
            if len(self._keys) >= self.size:
                self._keys.clear()  # unknown keys (a flood of made-up ones) cannot grow it
            cached = self._keys[digest] = (found, now)
        if cached[0] is None:
            raise Unauthorized("invalid API key")
        return cached[0]

    async def tenant(self, authorization: str | None, token: str | None = None) -> str:
        return (await self.principal(authorization, token)).tenant

    async def admin(self, authorization: str | None) -> str:
        """The tenant of an admin key: 401 without a valid key, 403 for a key that is not one."""
        principal = await self.principal(authorization)
        if not principal.admin:
            raise Forbidden("this endpoint needs an admin API key (mezzo keys create --admin)")
        return principal.tenant

    def known(self, authorization: str | None, token: str | None = None) -> str | None:
        """The tenant of a key this process verified recently, without asking the store (for
        the request log line); None when it did not, or the credentials are malformed."""
        if self._required is None:
            return None
        if not self._required[0]:
            return OPEN_TENANT
        try:
            digest = hash_key(presented_key(authorization, token))
        except Unauthorized:
            return None
        cached = self._keys.get(digest)
        return cached[0].tenant if cached is not None and cached[0] is not None else None
