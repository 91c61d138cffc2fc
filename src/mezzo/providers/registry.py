"""Providers by name, built once per process from the settings."""

from __future__ import annotations

import os
from typing import Literal

from mezzo.config import Settings
from mezzo.governor.tokens import CallableTokenizer, Tokenizer, named_tokenizer
from mezzo.providers.base import Provider

PROVIDERS = frozenset({"openai", "compat", "local"})


class UnknownProvider(ValueError):
    pass


class Providers:
    """`openai` talks to the OpenAI API (or any server at OPENAI_BASE_URL) with the `openai` SDK;
    `compat` to a second OpenAI-compatible server (MEZZO_COMPAT_BASE_URL); `local` runs the
    embedded GGUF model in-process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        provider = self._built.get(name)
        if provider is None:
            provider = self._build(name)
            self._built[name] = provider
        return provider

    def _build(self, name: str) -> Provider:
        if name == "openai":
            from mezzo.providers.openai import OpenAIProvider

            api: Literal["chat", "responses"] = (
                "chat" if self._settings.openai_api == "chat" else "responses"
            )
            return OpenAIProvider(
                api,
                base_url=self._settings.openai_base_url or os.environ.get("OPENAI_BASE_URL"),
                api_key=self._settings.openai_api_key
                or os.environ.get("OPENAI_API_KEY")
                or "unset",
            )
        if name == "compat":
            from mezzo.providers.openai import OpenAIProvider

            if not self._settings.compat_base_url:
                raise UnknownProvider(
                    "provider 'compat' needs MEZZO_COMPAT_BASE_URL (e.g. http://127.0.0.1:11434/v1)"
                )
            return OpenAIProvider(
                "chat",
                base_url=self._settings.compat_base_url,
                api_key=self._settings.compat_api_key or "none",
                name="compat",
            )
        if name == "local":
            from mezzo.providers.local import LocalProvider
            from mezzo.providers.local_sampling import Sampling

            path = self._settings.local_model_path
            return LocalProvider(
                str(path) if path is not None else None,
                sampling=Sampling(max_output_tokens=self._settings.local_max_output_tokens),
            )
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")

    def output_cap(self, provider: str) -> int | None:
        """The most output tokens the provider gives one call, where mezzo caps it itself."""
        return self._settings.local_max_output_tokens if provider == "local" else None

    def tokenizer(self, provider: str, model: str) -> Tokenizer | None:
        """The model's own tokenizer where mezzo has it; None lets the counter choose."""
        configured = self._settings.model_tokenizers.get(model)
        if configured is not None and (named := named_tokenizer(configured)) is not None:
            return named
        if provider == "local":
            counter = getattr(self.get("local"), "count_tokens", None)
            if counter is not None:
                return CallableTokenizer(f"local:{model}", counter)
        return None

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()
