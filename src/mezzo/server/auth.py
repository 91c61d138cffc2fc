"""API keys, stored hashed, mapped to tenants. With no keys, mezzo serves one local tenant."""

from __future__ import annotations

import hashlib
import secrets
import time

from mezzo.errors import Unauthorized
from mezzo.store.base import Store

OPEN_TENANT = "local"
KEY_PREFIX = "mz_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(store: Store, tenant: str, name: str = "", admin: bool = False) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await store.kv_put(
        f"apikey/{hash_key(key)}",
        {"tenant": tenant, "name": name, "admin": admin, "created_at": time.time()},
    )
    return key


async def keys_configured(store: Store) -> bool:
    return bool(await store.kv_scan("apikey/", limit=1))


class Authenticator:
    """Resolves a bearer token to a tenant. Whether keys exist is re-checked every few seconds,
    so a key created by `mezzo keys create` beside a running server takes effect.

    A key's tenant is cached in the process for `key_ttl_s` (a key never changes tenant), so a
    request reads no key from the store; a key removed from the store stops working in every
    process within that time. Unknown keys are never cached.
    """

    def __init__(
        self, store: Store, recheck_s: float = 5.0, key_ttl_s: float = 5.0, size: int = 10_000
    ) -> None:
        self.store = store
        self.recheck_s = recheck_s
        self.key_ttl_s = key_ttl_s
        self.size = size
        self._checked_at = 0.0
        self._required = False
        self._tenants: dict[str, tuple[str, float]] = {}

    async def required(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > self.recheck_s:
            self._required = await keys_configured(self.store)
            self._checked_at = now
        return self._required

    async def tenant(self, authorization: str | None, token: str | None = None) -> str:
        if not await self.required():
            return OPEN_TENANT
        digest = hash_key(_presented(authorization, token))
        now = time.monotonic()
        cached = self._tenants.get(digest)
        if cached is not None and now - cached[1] < self.key_ttl_s:
            return cached[0]
        record = await self.store.kv_get(f"apikey/{digest}")
        if record is None:
            self._tenants.pop(digest, None)
            raise Unauthorized("invalid API key")
        tenant = str(record["tenant"])
        if len(self._tenants) >= self.size:
            self._tenants.clear()
        self._tenants[digest] = (tenant, now)
        return tenant

    def known(self, authorization: str | None, token: str | None = None) -> str | None:
        """The tenant of a key this process verified recently, without asking the store; None
        when it did not (or the credentials are malformed)."""
        if not self._required:
            return OPEN_TENANT if self._checked_at else None
        try:
            digest = hash_key(_presented(authorization, token))
        except Unauthorized:
            return None
        cached = self._tenants.get(digest)
        return cached[0] if cached is not None else None


def _presented(authorization: str | None, token: str | None) -> str:
    presented = token
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized("use 'Authorization: Bearer <API key>'")
        presented = value.strip()
    if not presented:
        raise Unauthorized("an API key is required: 'Authorization: Bearer <API key>'")
    return presented
