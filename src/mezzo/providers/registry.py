"""Providers by name, built once per process from the settings."""

from __future__ import annotations

import os

from mezzo.config import Settings
from mezzo.providers.base import Provider


class UnknownProvider(ValueError):
    pass


class Providers:
    """`openai` talks to the OpenAI API (or any server at OPENAI_BASE_URL) with the `openai` SDK;
    `local` runs the embedded GGUF model in-process."""

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

            api = "chat" if self._settings.openai_api == "chat" else "responses"
            return OpenAIProvider(
                api,
                base_url=self._settings.openai_base_url or os.environ.get("OPENAI_BASE_URL"),
                api_key=self._settings.openai_api_key or os.environ.get("OPENAI_API_KEY") or "unset",
            )
        if name == "local":
            from mezzo.providers.local import LocalProvider

            return LocalProvider()
        raise UnknownProvider(f"unknown provider {name!r}; known: openai, local")

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()
