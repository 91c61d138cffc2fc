"""The loaded GGUF model and the one thread that runs it.

Everything here runs on the engine's own single worker thread (or, for tokenizing, on the
caller's thread): llama.cpp is blocking and not safe to drive from two threads at once, so one
`LocalEngine` per model file owns one `ThreadPoolExecutor(max_workers=1)`. Its work queue is
the queue in front of the model: requests run one after another, in arrival order, against a
single copy of the weights.
"""

from __future__ import annotations

import codecs
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mezzo.errors import Cancelled
from mezzo.providers.base import Message, ModelRequest, ModelResponse, TextDelta, Usage
from mezzo.providers.grammar import OutputError, OutputPlan
from mezzo.providers.local_sampling import Sampling, TextStop, TurnEnd

if TYPE_CHECKING:
    from llama_cpp import Llama

# Prompt tokens are evaluated in chunks so that a cancelled run stops between chunks.
PREFILL_CHUNK = 128
# Room for output the prompt must leave in the context window (less if max_output_tokens is
# smaller). A larger max_output_tokens is capped at what the window has left: a governor's
# generous default must not make every prompt "too long".
MIN_OUTPUT_ROOM = 256

# Sampling at a temperature is seeded: the same prompt gets the same answer, run after run.
SEED = 1234

Overflow = Literal["trim", "refuse"]
Emit = Callable[[TextDelta | ModelResponse], None]


class EngineError(Exception):
    """A failure the provider turns into a ProviderError."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True, slots=True)
class RunRecord:
    """How one run ended, kept for observability (and tests)."""

    finish_reason: str
    input_tokens: int
    output_tokens: int


class LocalEngine:
    def __init__(self, model_path: Path, n_ctx: int, n_threads: int) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mezzo-local")
        self.recent: deque[RunRecord] = deque(maxlen=64)
        self._llama: Llama | None = None
        self._turn_end: TurnEnd | None = None
        self._load_lock = threading.Lock()
        self._pending = 0
        self._pending_lock = threading.Lock()

    # -- the queue ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, work: Callable[[], None]) -> Future[None]:
        """Queue `work` for the engine thread; cancelling the future drops it if not started."""
        with self._pending_lock:
            self._pending += 1
        future = self.executor.submit(work)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[None]) -> None:
        with self._pending_lock:
            self._pending -= 1

    # -- loading and tokenizing (any thread) ---------------------------------------------------

    def load(self) -> Llama:
        with self._load_lock:
            if self._llama is None:
                self._llama = self._open()
            return self._llama

    def _open(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise EngineError(
                "the local model needs llama-cpp-python: pip install 'mezzo[local]'",
                retryable=False,
            ) from exc
        if not self.model_path.is_file():
            raise EngineError(f"local model file not found: {self.model_path}", retryable=False)
        try:
            return Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                seed=SEED,
                verbose=False,
            )
        except Exception as exc:
            raise EngineError(
                f"cannot load local model {self.model_path} (corrupt or not a GGUF file): {exc}",
                retryable=False,
            ) from exc

    def count_tokens(self, text: str) -> int:
        return len(self.load().tokenize(text.encode(), add_bos=False, special=False))

    def turn_end(self) -> TurnEnd:
        """What closes an assistant turn in this model's chat template (found once)."""
        if self._turn_end is None:
            self._turn_end = find_turn_end(self.load())
        return self._turn_end

    # -- one run (engine thread only) ----------------------------------------------------------

    def run(
        self,
        request: ModelRequest,
        plan: OutputPlan,
        overflow: Overflow,
        emit: Emit,
        cancel: threading.Event,
        sampling: Sampling | None = None,
    ) -> None:
        if cancel.is_set():
            raise Cancelled
        sampling = sampling or Sampling()
        llm = self.load()
        prompt, trimmed = self._fit_prompt(llm, request, plan, overflow)
        max_tokens = min(sampling.output_cap(request.max_output_tokens), self.n_ctx - len(prompt))
        grammar = _checked_grammar(llm, plan.grammar)
        call_grammar = _checked_grammar(llm, plan.call_grammar)
        text_sampling = (
            sampling.constrained(request.temperature)
            if grammar is not None
            else sampling.text(request.temperature)
        )
        end = self.turn_end()
        stop = TextStop(end.text) if end.token is None and end.text else None

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        streaming = plan.streams_text
        undecided = call_grammar is not None
        output_tokens = 0
        finish = "length"
        # Lazy: it runs from the first next(), after _prefill, and finds the prompt cached.
        generator = llm.generate(prompt, reset=True, grammar=grammar, **text_sampling)
        try:
            self._prefill(llm, prompt, cancel)
            while output_tokens < max_tokens:
                token = next(generator, None)
                if token is None:
                    finish = "stop"
                    break
                if cancel.is_set():
                    raise Cancelled
                if token == end.token or _is_end_of_generation(llm, token):
                    finish = "stop"
                    break
                output_tokens += 1
                piece = decoder.decode(llm.detokenize([token]))
                if stop is not None:
                    piece = stop.feed(piece)
                if piece:
                    pieces.append(piece)
                if undecided and "".join(pieces).strip():
                    undecided = False
                    head = "".join(pieces).lstrip()
                    if head.startswith("{"):
                        # A call after all: start over from the prompt under the call grammar.
                        generator.close()
                        generator = llm.generate(
                            prompt,
                            reset=True,
                            grammar=call_grammar,
                            **sampling.constrained(request.temperature),
                        )
                        pieces.clear()
                        decoder.reset()
                        stop = TextStop(stop.marker) if stop is not None else None
                        continue
                    streaming = True
                    pieces, piece = [head], head
                if streaming and piece:
                    emit(TextDelta(piece))
                if stop is not None and stop.done:
                    finish = "stop"
                    break
        except Cancelled:
            self.recent.append(RunRecord("cancelled", len(prompt), output_tokens))
            raise
        finally:
            generator.close()
        tail = decoder.decode(b"", final=True) + (stop.flush() if stop is not None else "")
        if tail:
            pieces.append(tail)
            if streaming:
                emit(TextDelta(tail))
        self.recent.append(RunRecord(finish, len(prompt), output_tokens))

        output = "".join(pieces)
        try:
            parsed = plan.parse(output)
        except OutputError as exc:
            cut = f" (cut at {max_tokens} output tokens)" if finish == "length" else ""
            raise EngineError(
                f"local model output is not valid{cut}: {exc}", retryable=False
            ) from exc
        headers = {"x-mezzo-trimmed-messages": str(trimmed)} if trimmed else {}
        emit(
            ModelResponse(
                model=self.model_path.stem,
                text=parsed.text,
                tool_calls=parsed.tool_calls,
                usage=Usage(input_tokens=len(prompt), output_tokens=output_tokens),
                finish_reason="tool_calls" if parsed.tool_calls else finish,
                headers=headers,
            )
        )

    def _prefill(self, llm: Llama, prompt: list[int], cancel: threading.Event) -> None:
        """Evaluate the prompt in chunks, reusing the cached prefix of the previous run."""
        cached = llm.n_tokens
        reusable = cached < len(prompt) and list(llm.input_ids[:cached]) == prompt[:cached]
        if not reusable:
            llm.reset()
        for start in range(llm.n_tokens, len(prompt), PREFILL_CHUNK):
            if cancel.is_set():
                raise Cancelled
            llm.eval(prompt[start : start + PREFILL_CHUNK])

    def _fit_prompt(
        self, llm: Llama, request: ModelRequest, plan: OutputPlan, overflow: Overflow
    ) -> tuple[list[int], int]:
        """Tokenized prompt that leaves room for the output; drops oldest turns if allowed."""
        room = min(request.max_output_tokens or MIN_OUTPUT_ROOM, MIN_OUTPUT_ROOM)
        messages = list(request.messages)
        trimmed = 0
        while True:
            prompt = tokenize_prompt(llm, messages, plan)
            if len(prompt) + room <= self.n_ctx:
                return prompt, trimmed
            droppable = [i for i, m in enumerate(messages[:-1]) if m.role != "system"]
            if overflow == "refuse" or not droppable:
                raise EngineError(
                    f"prompt is {len(prompt)} tokens; with {room} tokens of output it does not "
                    f"fit the local model's context window of {self.n_ctx} tokens",
                    retryable=False,
                    status=400,
                )
            del messages[droppable[0]]
            trimmed += 1


def tokenize_prompt(llm: Llama, messages: Sequence[Message], plan: OutputPlan) -> list[int]:
    """The transcript in the model's own chat template, as tokens.

    Only the template's own text may produce special tokens: message contents are tokenized
    as plain text, so a user who writes `<|im_end|>` cannot forge a turn boundary.
    """
    chat = to_chat_messages(messages, plan.instructions)
    masked = [{**turn, "content": f"\x00{i}\x00"} for i, turn in enumerate(chat)]
    rendered = _render(llm, masked)
    tokens: list[int] = []
    position = 0
    for mark in _CONTENT_MARK.finditer(rendered):
        template_text = rendered[position : mark.start()]
        tokens += llm.tokenize(template_text.encode(), add_bos=position == 0, special=True)
        content = chat[int(mark.group(1))]["content"]
        tokens += llm.tokenize(content.encode(), add_bos=False, special=False)
        position = mark.end()
    tokens += llm.tokenize(rendered[position:].encode(), add_bos=position == 0, special=True)
    return tokens


_CONTENT_MARK = re.compile(r"\x00(\d+)\x00")


def find_turn_end(llm: Llama, template: str | None = None) -> TurnEnd:
    """The end of an assistant turn in the chat template (the model's own unless `template`):
    what the template writes right after an assistant message's content, up to the line's end,
    and its token when that text is a single control token of the vocabulary."""
    import llama_cpp

    chat = [{"role": "user", "content": "\x000\x00"}, {"role": "assistant", "content": "\x001\x00"}]
    rendered = _render(llm, chat, template)
    after = rendered.partition("\x001\x00")[2]
    text = after.split("\n", 1)[0]
    tokens = llm.tokenize(after.encode(), add_bos=False, special=True)
    first = tokens[0] if tokens else None
    if first is not None and llama_cpp.llama_vocab_is_control(llm._model.vocab, first):
        return TurnEnd(llm.detokenize([first], special=True).decode(errors="replace"), first)
    return TurnEnd(text.strip(), None)


def _render(llm: Llama, chat: list[dict[str, str]], template: str | None = None) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = template or llm.metadata.get("tokenizer.chat_template")
    if not template:
        return _chatml(chat)
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llm.detokenize([llm.token_eos()], special=True).decode(errors="replace"),
        bos_token=llm.detokenize([llm.token_bos()], special=True).decode(errors="replace"),
    )
    return formatter(messages=chat).prompt  # type: ignore[arg-type]


def to_chat_messages(messages: Sequence[Message], instructions: str) -> list[dict[str, str]]:
    """Neutral transcript → plain role/content turns a small chat template understands.

    Tool calls become JSON in the assistant turn and tool results become user turns, since
    SmolLM2's template has no tool roles.
    """
    names = {call.call_id: call.name for m in messages for call in m.tool_calls}
    chat: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            name = names.get(message.call_id or "", "tool")
            chat.append({"role": "user", "content": f"Result of {name}: {message.content}"})
        elif message.tool_calls:
            calls = [{"name": c.name, "arguments": c.arguments} for c in message.tool_calls]
            content = "\n".join(filter(None, [message.content, *map(json.dumps, calls)]))
            chat.append({"role": "assistant", "content": content})
        else:
            chat.append({"role": message.role, "content": message.content})
    if instructions:
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{instructions}"}
        else:
            chat.insert(0, {"role": "system", "content": instructions})
    return chat


def _chatml(chat: list[dict[str, str]]) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    return turns + "<|im_start|>assistant\n"


def _checked_grammar(llm: Llama, grammar: str | None) -> Any:
    """A LlamaGrammar, after checking that llama.cpp accepts it (a bad one would crash it)."""
    if grammar is None:
        return None
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    if not sampler:
        raise EngineError(
            "llama.cpp rejected the grammar built from the schema", retryable=False, status=400
        )
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(grammar, verbose=False)


def _is_end_of_generation(llm: Llama, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))
