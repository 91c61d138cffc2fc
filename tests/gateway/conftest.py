"""A mezzo server with its gateway around the stub LLM, shared by the module's tests.

Routes: `default` (stub-model) and `limited` (stub-limited at 1 request a minute, falling back
to stub-small), so fallback routing can be seen without touching the other tests' routes, and
`via-chat`: the stub again, through the `compat` provider, which speaks Chat Completions (the
`openai` provider speaks the Responses API).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from gateway_support import MODELS, gateway_settings, make_workspace
from openai import AsyncOpenAI, OpenAI

from core_support import ServerThread
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer


@pytest.fixture(scope="module")
def gw_stub() -> Iterator[StubServer]:
    with StubServer(StubConfig(models=MODELS)) as stub:
        yield stub


@pytest.fixture(scope="module")
def gw_server(
    tmp_path_factory: pytest.TempPathFactory, gw_stub: StubServer
) -> Iterator[ServerThread]:
    settings = gateway_settings(tmp_path_factory.mktemp("gw") / "data", gw_stub)
    with ServerThread(settings, workers=False) as running:
        yield running


@pytest.fixture
def stub(gw_stub: StubServer) -> StubServer:
    gw_stub.configure(**StubConfig(models=MODELS).model_dump())
    gw_stub.reset()
    return gw_stub


@pytest.fixture
def workspace(gw_server: ServerThread) -> str:
    """A fresh workspace of its own for each test (default configuration)."""
    return make_workspace(gw_server)


@pytest.fixture
def client(gw_server: ServerThread, workspace: str) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    ) as sdk:
        yield sdk


@pytest.fixture
async def aclient(gw_server: ServerThread, workspace: str) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    )
    yield sdk
    await sdk.close()
