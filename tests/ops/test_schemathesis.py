"""mezzo's own OpenAPI spec, fuzzed by schemathesis against a real loopback server, with an
admin key and without one: no 5xx, and every response conforms to the documented schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from core_support import ServerThread, core_settings  # noqa: E402
from mezzo.server.auth import create_key  # noqa: E402
from mezzo.testing.config import StubConfig  # noqa: E402
from mezzo.testing.server import StubServer  # noqa: E402

CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, str]]:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    with (
        StubServer(StubConfig()) as stub,
        ServerThread(core_settings(data, stub), workers=False) as server,
    ):
        key = server.call(create_key(server.mezzo.store, "fuzz", admin=True))
        yield server, key


@pytest.fixture(scope="module")
def api_schema(keyed_server: tuple[ServerThread, str]) -> Any:
    server, _ = keyed_server
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz(schema: Any, base_url: str, headers: dict[str, str]) -> tuple[list[str], list[int]]:
    """Every operation of the spec, hypothesis-generated cases; the failures and statuses seen."""
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        with contextlib.suppress(AssertionError):  # recorded in `failures`, reported at once
            fuzz_operation(operation, base_url, headers, failures, statuses)
    return failures, statuses


def fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], failures: list[str], statuses: list[int]
) -> None:
    @FUZZ
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors
            failures.append(f"{operation.label}: {str(exc)[:600]}")
            raise

    check()


def test_with_an_admin_key(api_schema: Any, keyed_server: tuple[ServerThread, str]) -> None:
    server, key = keyed_server
    failures, statuses = fuzz(api_schema, server.url, {"authorization": f"Bearer {key}"})
    assert not failures, "\n".join(failures)
    assert any(200 <= s < 300 for s in statuses)


def test_without_a_key(api_schema: Any, keyed_server: tuple[ServerThread, str]) -> None:
    failures, statuses = fuzz(api_schema, keyed_server[0].url, {})
    assert not failures, "\n".join(failures)
    assert statuses.count(401) > len(statuses) // 2
