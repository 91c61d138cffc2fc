"""The governor's cross-process tests (budget race across four worker processes, two workers
sharing one TPM limit), unchanged, with every process on a private Redis instead of SQLite."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from redis_process import RedisProcess

from core_support import ServeProcess
from mezzo import keys
from mezzo.stub.server import StubServer

TESTS = Path(__file__).resolve().parents[1]


def _load_governor_tests() -> ModuleType:
    path = TESTS / "governor" / "test_governor_engine.py"
    spec = importlib.util.spec_from_file_location("governor_engine_on_redis", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


governor = _load_governor_tests()


@pytest.fixture
def on_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    with RedisProcess(tmp_path / "redis") as server:
        base = governor.process_env

        def env_on_redis(*args: Any, **kwargs: Any) -> dict[str, str]:
            return {**base(*args, **kwargs), "MEZZO_STORE": server.url}

        monkeypatch.setattr(governor, "process_env", env_on_redis)
        client = redis.Redis(port=server.port)
        yield client
        client.close()


def test_budget_race_on_redis(
    on_redis: redis.Redis, tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    governor.test_budget_race_across_four_worker_processes_never_overshoots(
        tmp_path, stub, processes
    )
    assert on_redis.exists(f"mezzo:{{w:{keys.workspace_key('local', 'race2')}}}:ledger")
    assert not (tmp_path / "data" / "mezzo.sqlite3").exists()


def test_shared_tpm_on_redis(
    on_redis: redis.Redis, tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    governor.test_two_worker_processes_share_one_tpm_limit(tmp_path, stub, processes)
    assert on_redis.xlen(f"mezzo:{{w:{keys.workspace_key('local', 'tpm')}}}:log") > 0
    assert not (tmp_path / "data" / "mezzo.sqlite3").exists()
