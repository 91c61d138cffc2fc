"""The hot submit route answers exactly as the FastAPI route it stands in front of.

Two servers, one with the hot route and one without, get the same requests in the same order;
every answer (status, content type, location, body bytes) must be the same, and the hot route
must have answered the requests it is meant to take (else this would compare FastAPI with
itself). Runs submitted with an Idempotency-Key have the same id on both servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core_support import ServerThread, core_settings
from mezzo import keys
from mezzo.server.app import build_asgi
from mezzo.server.auth import hash_key
from mezzo.server.hot import HotRoutes
from mezzo.store.base import Store
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer

KEY = "mz_hot-route-test-key"
OTHER_KEY = "mz_hot-route-other-tenant"
JSON = {"content-type": "application/json"}
AUTH = {"authorization": f"Bearer {KEY}"}


def hot_layer(server: ServerThread) -> HotRoutes | None:
    app = server.server.config.app
    while app is not None and not isinstance(app, HotRoutes):
        app = getattr(app, "app", None)
    return app


async def seed_keys(store: Store) -> None:
    for key, tenant in ((KEY, "acme"), (OTHER_KEY, "other")):
        await store.kv_put(keys.api_key(hash_key(key)), {"tenant": tenant, "admin": False})


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, ...]]:
    with StubServer(StubConfig()) as stub:
        started = []
        try:
            for hot in (True, False):
                data = Path(tmp_path_factory.mktemp("hot" if hot else "plain"))
                server = ServerThread(core_settings(data, stub), workers=False)
                server.server.config.app = build_asgi(server.mezzo, workers=False, hot_routes=hot)
                started.append(server.__enter__())
                server.call(seed_keys(server.mezzo.store))
                for workspace, key in (("w1", KEY), ("theirs", OTHER_KEY)):
                    created = httpx.post(
                        f"{server.url}/v1/workspaces",
                        json={"id": workspace},
                        headers={"authorization": f"Bearer {key}"},
                        trust_env=False,
                    )
                    assert created.status_code == 201, created.text
            yield tuple(started)
        finally:
            for server in started:
                server.__exit__(None, None, None)


def answer(server: ServerThread, path: str, body: bytes, headers: dict[str, str]) -> tuple:
    response = httpx.post(
        server.url + path, content=body, headers=headers, trust_env=False, timeout=30
    )
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("location"),
        response.content,
    )


RUNS = "/v1/workspaces/w1/runs"
# (what, path, body, headers, answered by the hot route)
CASES: list[tuple[str, str, bytes, dict[str, str], bool]] = [
    ("a submit", RUNS, b'{"input": "hello"}', {**JSON, **AUTH, "idempotency-key": "a"}, True),
    ("its retry", RUNS, b'{"input": "hello"}', {**JSON, **AUTH, "idempotency-key": "a"}, True),
    (
        "the key, other input",
        RUNS,
        b'{"input": "x"}',
        {**JSON, **AUTH, "idempotency-key": "a"},
        True,
    ),
    (
        "every field",
        RUNS,
        b'{"input":"x","priority":"high","max_steps":3,"metadata":{"k":"v"}}',
        {**JSON, **AUTH, "idempotency-key": "b"},
        True,
    ),
    (
        "charset",
        RUNS,
        b'{"input": "c"}',
        {"content-type": "application/json; charset=utf-8", **AUTH, "idempotency-key": "c"},
        True,
    ),
    (
        "unicode",
        RUNS,
        '{"input": "héllo ✓ \\u00e9"}'.encode(),
        {**JSON, **AUTH, "idempotency-key": "d"},
        True,
    ),
    (
        "key at its limit",
        RUNS,
        b'{"input": "e"}',
        {**JSON, **AUTH, "idempotency-key": "k" * 200},
        True,
    ),
    ("no such workspace", "/v1/workspaces/nope/runs", b'{"input": "x"}', {**JSON, **AUTH}, True),
    # Outside the id alphabet (mezzo.bounds): FastAPI's path validation answers.
    ("non-ascii workspace", "/v1/workspaces/wé/runs", b'{"input": "x"}', {**JSON, **AUTH}, False),
    ("another tenant's", "/v1/workspaces/theirs/runs", b'{"input": "x"}', {**JSON, **AUTH}, True),
    ("no key", RUNS, b'{"input": "x"}', JSON, True),
    ("wrong key", RUNS, b'{"input": "x"}', {**JSON, "authorization": "Bearer nope"}, True),
    ("basic auth", RUNS, b'{"input": "x"}', {**JSON, "authorization": "Basic eHl6"}, True),
    ("invalid JSON", RUNS, b'{"input": ', {**JSON, **AUTH}, False),
    ("invalid JSON, no key", RUNS, b'{"input": ', JSON, False),
    ("invalid body, no key", RUNS, b"{}", JSON, False),
    ("not an object", RUNS, b'["input"]', {**JSON, **AUTH}, False),
    ("no input", RUNS, b"{}", {**JSON, **AUTH}, False),
    ("empty input", RUNS, b'{"input": ""}', {**JSON, **AUTH}, False),
    ("unknown field", RUNS, b'{"input": "x", "extra": 1}', {**JSON, **AUTH}, False),
    ("bad priority", RUNS, b'{"input": "x", "priority": "urgent"}', {**JSON, **AUTH}, False),
    ("zero steps", RUNS, b'{"input": "x", "max_steps": 0}', {**JSON, **AUTH}, False),
    ("NaN", RUNS, b'{"input": "x", "max_steps": NaN}', {**JSON, **AUTH}, False),
    ("text/plain", RUNS, b'{"input": "x"}', {"content-type": "text/plain", **AUTH}, False),
    ("no content type", RUNS, b'{"input": "x"}', AUTH, False),
    ("empty body", RUNS, b"", {**JSON, **AUTH}, False),
    ("invalid utf-8", RUNS, b'{"input": "\xff"}', {**JSON, **AUTH}, False),
    ("deep nesting", RUNS, b'{"input": ' + b"[" * 100_000, {**JSON, **AUTH}, False),
    (
        "key too long",
        RUNS,
        b'{"input": "x"}',
        {**JSON, **AUTH, "idempotency-key": "k" * 201},
        False,
    ),
]


def test_the_hot_route_answers_as_fastapi_does(servers: tuple[ServerThread, ...]) -> None:
    hot, plain = servers
    layer = hot_layer(hot)
    assert layer is not None and hot_layer(plain) is None
    for what, path, body, headers, fast in CASES:
        before = layer.answered
        ours = answer(hot, path, body, headers)
        theirs = answer(plain, path, body, headers)
        assert ours == theirs, what
        assert layer.answered - before == (1 if fast else 0), what
    statuses = [answer(plain, path, body, headers)[0] for _, path, body, headers, _ in CASES[:3]]
    assert statuses == [202, 202, 409]


def test_the_openapi_schema_is_fastapis(servers: tuple[ServerThread, ...]) -> None:
    hot, plain = servers
    schema = httpx.get(f"{hot.url}/openapi.json", trust_env=False).json()
    assert schema == httpx.get(f"{plain.url}/openapi.json", trust_env=False).json()
    submit = schema["paths"]["/v1/workspaces/{workspace}/runs"]["post"]
    assert "202" in submit["responses"] and "422" in submit["responses"]
    names = {p["name"] for p in submit["parameters"]}
    assert names == {"workspace", "idempotency-key", "authorization"}
