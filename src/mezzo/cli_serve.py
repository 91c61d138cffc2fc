"""`mezzo serve`'s start: checks that need the store, uvicorn, then what a person needs to know.

Start-up lines go to stderr once uvicorn listens, so a script that waits for them can connect
at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from rich.console import Console

from mezzo.config import Settings, is_loopback
from mezzo.service import Mezzo

# One line per message, never wrapped at the terminal's width: scripts read these lines.
err = Console(stderr=True, soft_wrap=True)


class ServeRefused(Exception):
    """A start that would be unsafe; the message says why and what to do."""


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling `announce` with the URLs it listens on once it does."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[list[str]], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce(self.urls())

    def urls(self) -> list[str]:
        """The bound addresses, real ports included (`--port 0` asks the system for one)."""
        return [
            http_url(sock.getsockname())
            for server in self.servers
            for sock in server.sockets
            if sock.family in (socket.AF_INET, socket.AF_INET6)
        ]


def http_url(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def say_what_is_off(mezzo: Mezzo) -> None:
    """Each server-side tool this machine cannot run, why, and the fix."""
    for name, reason in mezzo.tools.off().items():
        err.print(
            f"[yellow]{name} tool off:[/] {reason} (`mezzo doctor` checks it)", highlight=False
        )


async def serve(mezzo: Mezzo, settings: Settings, *, workers: bool) -> None:
    from mezzo.server.app import build_asgi
    from mezzo.server.auth import keys_configured
    from mezzo.server.ws_frames import FramedWebSocketProtocol
    from mezzo.store.factory import open_store

    probe = await open_store(settings.store_url)
    try:
        has_keys = await keys_configured(probe)
    finally:
        await probe.close()
    if not has_keys and not is_loopback(settings.host):
        raise ServeRefused(
            f"refusing to bind {settings.host} without API keys: anyone on the network could "
            "use it. Create a key with `mezzo keys create --tenant NAME`, or bind 127.0.0.1."
        )

    def announce(urls: list[str]) -> None:
        default = settings.effective_routes()["default"]
        err.print(f"mezzo {settings.store_url} on {', '.join(urls)}", highlight=False)
        err.print(
            f"default route: {default.primary}"
            + (f" (fallback {default.fallback})" if default.fallback else "")
            + (
                ""
                if os.environ.get("OPENAI_API_KEY") or settings.routes
                else "  — no provider configured: using the embedded local model"
            )
        )
        if not has_keys:
            err.print("no API keys configured: serving loopback only, as one local tenant")
        say_what_is_off(mezzo)

    config = uvicorn.Config(
        build_asgi(mezzo, workers=workers),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.lease_seconds),
        ws=FramedWebSocketProtocol,  # the event fan-out writes frames straight to sockets
    )
    await AnnouncingServer(config, announce).serve()
