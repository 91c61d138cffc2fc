"""API-key lookups are cached per process, and a key created or revoked elsewhere takes effect
within the cache's time to live (the Authenticator on a real SQLite store, a controlled clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mezzo.errors import Forbidden, Unauthorized
from mezzo.server.auth import OPEN_TENANT, Authenticator, create_key, revoke_key
from mezzo.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_keys_created_and_revoked_elsewhere_take_effect_within_the_ttl(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "keys.sqlite3") as store:
        clock = Clock()
        auth = Authenticator(store, ttl_s=1.0, clock=clock)
        assert await auth.tenant(None) == OPEN_TENANT
        key = await create_key(store, "acme")  # as `mezzo keys create` does, beside the server
        await create_key(store, "other")
        assert await auth.tenant(None) == OPEN_TENANT  # "no keys" is trusted for the ttl
        clock.now += 1.0
        with pytest.raises(Unauthorized):
            await auth.tenant(None)
        assert await auth.tenant(f"Bearer {key}") == "acme"
        with pytest.raises(Unauthorized):
            await auth.tenant("Bearer mz_made-up")

        assert await revoke_key(store, key)
        assert await auth.tenant(f"Bearer {key}") == "acme"  # cached: no read this time
        clock.now += 0.5
        assert await auth.tenant(None, token=key) == "acme"
        clock.now += 0.5
        with pytest.raises(Unauthorized):
            await auth.tenant(f"Bearer {key}")


async def test_admin_needs_an_admin_key_once_keys_exist(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "keys.sqlite3") as store:
        auth = Authenticator(store)
        assert await auth.admin(None) == OPEN_TENANT  # no keys: the local tenant operates it
        user = await create_key(store, "acme")
        admin = await create_key(store, "ops", admin=True)
        auth = Authenticator(store)
        assert await auth.admin(f"Bearer {admin}") == "ops"
        with pytest.raises(Forbidden):
            await auth.admin(f"Bearer {user}")
        with pytest.raises(Unauthorized):
            await auth.admin(None)
