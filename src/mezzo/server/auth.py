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
    so a key created by `mezzo keys create` beside a running server takes effect."""

    def __init__(self, store: Store, recheck_s: float = 5.0) -> None:
        self.store = store
        self.recheck_s = recheck_s
        self._checked_at = 0.0
        self._required = False

    async def required(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > self.recheck_s:
            self._required = await keys_configured(self.store)
            self._checked_at = now
        return self._required

    async def tenant(self, authorization: str | None, token: str | None = None) -> str:
        if not await self.required():
            return OPEN_TENANT
        presented = token
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value:
                raise Unauthorized("use 'Authorization: Bearer <API key>'")
            presented = value.strip()
        if not presented:
            raise Unauthorized("an API key is required: 'Authorization: Bearer <API key>'")
        record = await self.store.kv_get(f"apikey/{hash_key(presented)}")
        if record is None:
            raise Unauthorized("invalid API key")
        return str(record["tenant"])
