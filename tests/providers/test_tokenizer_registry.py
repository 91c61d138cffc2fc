"""Tokenizers come from one registry by name; the stub LLM's is named there by import path, so
a run on the default tokenizers never imports `mezzo.stub` (a test double on the runtime path
was issue 17's point 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core_support import ROOT
from mezzo.config import Settings
from mezzo.governor.tokens import (
    EstimateTokenizer,
    TiktokenTokenizer,
    named_tokenizer,
    register_tokenizer,
    tokenizer_names,
)
from mezzo.providers.registry import Providers
from mezzo.stub.server import StubServer
from mezzo.stub.tokens import StubTokenizer

# One run of an embedded engine to its end against the stub LLM (which runs in the parent),
# then the mezzo modules this process imported.
RUN_ONE = textwrap.dedent(
    """
    import asyncio, json, sys

    from mezzo.config import RouteConfig, Settings
    from mezzo.protocol import CreateWorkspace, SubmitRun
    from mezzo.server.auth import OPEN_TENANT
    from mezzo.service import Mezzo

    async def main() -> str:
        mezzo = Mezzo(Settings(
            data_dir=sys.argv[1],
            routes={"default": RouteConfig(primary=sys.argv[3])},
            openai_base_url=sys.argv[2],
            openai_api_key="test",
            openai_api="chat",
        ))
        await mezzo.start()
        try:
            await mezzo.create_workspace(OPEN_TENANT, CreateWorkspace(id="w"))
            accepted, _ = await mezzo.submit_run(OPEN_TENANT, "w", SubmitRun(input="hi"), None)
            for _ in range(600):
                view = await mezzo.get_run(OPEN_TENANT, accepted.run)
                if view.status in ("completed", "failed", "cancelled"):
                    return view.status
                await asyncio.sleep(0.05)
            return "unfinished"
        finally:
            await mezzo.stop()

    status = asyncio.run(main())
    print(json.dumps({
        "status": status,
        "mezzo": sorted(m for m in sys.modules if m.startswith("mezzo.")),
    }))
    """
)


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "openai:stub-model"])
def test_a_run_on_the_default_tokenizers_imports_no_stub_module(
    tmp_path: Path, stub: StubServer, model: str
) -> None:
    """gpt-4o-mini counts with tiktoken, stub-model (unknown to mezzo) with the estimate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", RUN_ONE, str(tmp_path), stub.base_url, model],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "completed"
    assert "mezzo.engine.engine" in result["mezzo"]  # the run was advanced in this process
    assert [m for m in result["mezzo"] if m.startswith("mezzo.stub")] == []


def test_each_registered_name_builds_its_tokenizer() -> None:
    assert {"o200k_base", "cl100k_base", "estimate", "mezzo-stub"} <= set(tokenizer_names())
    assert named_tokenizer("o200k_base") == TiktokenTokenizer("o200k_base")
    assert named_tokenizer("cl100k_base") == TiktokenTokenizer("cl100k_base")
    assert named_tokenizer("estimate") == EstimateTokenizer()
    stub_tokenizer = named_tokenizer("mezzo-stub")
    assert isinstance(stub_tokenizer, StubTokenizer)
    assert named_tokenizer("no-such-tokenizer") is None


class WordTokenizer:
    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())


def test_providers_use_the_configured_name_and_a_registered_one() -> None:
    register_tokenizer("words", WordTokenizer)
    providers = Providers(
        Settings(model_tokenizers={"stub-model": "mezzo-stub", "wordy": "words", "typo": "nope"})
    )
    stub_counter = providers.tokenizer("openai", "stub-model")
    assert stub_counter is not None and stub_counter.name == "mezzo-stub"
    words = providers.tokenizer("openai", "wordy")
    assert words is not None and words.count("three little words") == 3
    # A name nobody registered, like a model without a setting, lets the counter choose.
    assert providers.tokenizer("openai", "typo") is None
    assert providers.tokenizer("openai", "gpt-4o") is None
