"""Checks of a configuration before mezzo starts: each finding names the setting and the fix.

`serve` and `worker` refuse to start on an error; `mezzo doctor` prints every finding,
warnings and passed checks too. A machine that cannot sandbox code is no error: `run_code` is
off there (`sandbox_problem`), the rest of mezzo works.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from mezzo.config import RouteConfig, Settings, is_loopback

Level = Literal["ok", "warning", "error"]
STORE_SCHEMES = ("sqlite", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        return self.message + (f" — fix: {self.fix}" if self.fix and self.level != "ok" else "")


def ok(check: str, message: str) -> Finding:
    return Finding("ok", check, message)


def _providers_in(routes: dict[str, RouteConfig]) -> set[str]:
    used = set()
    for route in routes.values():
        for ref in (route.primary, route.fallback):
            if ref:
                used.add(ref.partition(":")[0])
    return used


def check_routes(settings: Settings) -> list[Finding]:
    from mezzo.governor.router import Router, RoutingError

    routes = settings.effective_routes()
    try:
        Router.from_settings({name: r.model_dump() for name, r in routes.items()})
    except RoutingError as exc:
        return [
            Finding(
                "error",
                "routes",
                f"setting 'routes' (MEZZO_ROUTES): {exc}",
                "name a known provider as provider:model, e.g. openai:gpt-5-mini or local:smollm2",
            )
        ]
    shown = ", ".join(
        f"{n}={r.primary}" + (f"→{r.fallback}" if r.fallback else "") for n, r in routes.items()
    )
    return [ok("routes", f"routes: {shown}")]


def check_store_url(settings: Settings) -> list[Finding]:
    scheme = urlsplit(settings.store_url).scheme
    if scheme not in STORE_SCHEMES:
        return [
            Finding(
                "error",
                "store",
                f"setting 'store' (MEZZO_STORE / --store): unknown store URL {settings.store_url!r}",
                "use sqlite:///PATH (embedded, the default), redis://HOST:PORT/DB or "
                "redis+cluster://HOST:PORT[,HOST:PORT...]",
            )
        ]
    return []


async def check_store(settings: Settings) -> list[Finding]:
    from mezzo.store.factory import open_store

    found = check_store_url(settings)
    if found:
        return found
    if settings.store_url.startswith("sqlite:///"):
        folder = Path(settings.store_url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return [
                Finding(
                    "error",
                    "store",
                    f"setting 'store'/'data_dir': cannot create {folder}: {exc.strerror}",
                    "point MEZZO_DATA_DIR (or MEZZO_STORE) at a writable directory",
                )
            ]
    try:
        store = await asyncio.wait_for(open_store(settings.store_url), PROBE_TIMEOUT_S * 2)
        try:
            await store.head("__doctor__")
        finally:
            await store.close()
    except Exception as exc:
        return [
            Finding(
                "error",
                "store",
                f"setting 'store' (MEZZO_STORE): cannot open {settings.store_url}: {exc}",
                "start the Redis server or correct the URL; for one machine leave MEZZO_STORE "
                "unset (embedded SQLite)",
            )
        ]
    return [ok("store", f"store {settings.store_url} opens and answers")]


def check_openai(settings: Settings) -> list[Finding]:
    if "openai" not in _providers_in(settings.effective_routes()):
        return []
    if not (settings.openai_api_key or os.environ.get("OPENAI_API_KEY")):
        return [
            Finding(
                "error",
                "openai",
                "a route uses provider 'openai' but no API key is set (openai_api_key)",
                "export OPENAI_API_KEY=... (or MEZZO_OPENAI_API_KEY), or route to local:smollm2",
            )
        ]
    return [ok("openai", "OpenAI API key is set")]


async def probe_openai(settings: Settings) -> list[Finding]:
    """Reachability of OPENAI_BASE_URL, probed only when it is a loopback address."""
    base = settings.openai_base_url or os.environ.get("OPENAI_BASE_URL")
    if not base or "openai" not in _providers_in(settings.effective_routes()):
        return []
    host = urlsplit(base).hostname or ""
    if not is_loopback(host):
        return [ok("openai", f"OpenAI base URL {base} (not probed: only loopback is probed)")]
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            response = await client.get(base.rstrip("/") + "/models")
    except httpx.HTTPError as exc:
        return [
            Finding(
                "error",
                "openai",
                f"setting 'openai_base_url' (OPENAI_BASE_URL): {base} is unreachable: {exc!r}",
                "start the server there or correct OPENAI_BASE_URL",
            )
        ]
    return [ok("openai", f"OpenAI base URL {base} answers (HTTP {response.status_code})")]


def check_local_model(settings: Settings) -> list[Finding]:
    used = "local" in _providers_in(settings.effective_routes())
    if settings.local_model_path is not None:
        path = settings.local_model_path
        if not path.is_file() or not os.access(path, os.R_OK):
            return [
                Finding(
                    "error",
                    "local model",
                    f"setting 'local_model_path' (MEZZO_LOCAL_MODEL_PATH): {path} is not a "
                    "readable file",
                    "point it at a readable .gguf file, or unset it to use the bundled SmolLM2",
                )
            ]
        return [ok("local model", f"local model file {path} is readable")]
    if not used:
        return []
    from mezzo.providers.base import ProviderError
    from mezzo.providers.local import default_model_path

    level: Level = "error"
    try:
        path = default_model_path()
    except ProviderError as exc:
        return [
            Finding(
                level,
                "local model",
                f"a route uses provider 'local': {exc}",
                "pip install 'mezzo[local]', or route to a remote provider",
            )
        ]
    if importlib.util.find_spec("llama_cpp") is None:
        return [
            Finding(
                level,
                "local model",
                "a route uses provider 'local' but llama-cpp-python is not installed",
                "pip install 'mezzo[local]'",
            )
        ]
    if not os.access(path, os.R_OK):
        return [
            Finding(
                level,
                "local model",
                f"the local model file {path} is not readable",
                f"chmod a+r {path}",
            )
        ]
    return [ok("local model", f"local model file {path}")]


@dataclass(frozen=True, slots=True)
class SandboxProblem:
    """Why no sandbox can be made here, and what turns `run_code` on."""

    reason: str
    fix: str

    def sentence(self) -> str:
        return f"{self.reason}; to turn it on, {self.fix}"


INSTALL_BWRAP = "apt-get install bubblewrap (Linux only) and restart mezzo"
ALLOW_USERNS = (
    "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
    "also kernel.apparmor_restrict_unprivileged_userns=0) or run mezzo where they are allowed, "
    "and restart mezzo"
)
PIDS_CGROUP = (
    "run mezzo as a user other than root, or give it a writable pids cgroup, and restart mezzo"
)


@functools.cache
def sandbox_problem() -> SandboxProblem | None:
    """Whether sandboxed code can run on this machine: bwrap on PATH, then one real sandbox
    (`/bin/true` in fresh namespaces, and a pid limit that holds). Probed once per process."""
    if shutil.which("bwrap") is None:
        return SandboxProblem("bubblewrap (bwrap) is not on PATH", INSTALL_BWRAP)
    from mezzo.sandbox.limits import SandboxUnavailable
    from mezzo.sandbox.tool import shared_sandbox

    try:
        shared_sandbox().check()
    except (SandboxUnavailable, OSError, subprocess.SubprocessError) as exc:
        reason = str(exc) or type(exc).__name__
        return SandboxProblem(reason, PIDS_CGROUP if "pid limit" in reason else ALLOW_USERNS)
    return None


def check_sandbox() -> list[Finding]:
    problem = sandbox_problem()
    if problem is None:
        found = [ok("sandbox", f"bubblewrap at {shutil.which('bwrap')} isolates code: run_code on")]
    else:
        found = [
            Finding(
                "warning", "sandbox", f"the run_code tool is off: {problem.reason}", problem.fix
            )
        ]
    if shutil.which("socat") is None:
        found.append(
            Finding(
                "warning",
                "sandbox",
                "socat is not on PATH: sandboxed code with allow_net cannot reach its proxy",
                "apt-get install socat",
            )
        )
    else:
        found.append(ok("sandbox", f"socat at {shutil.which('socat')}"))
    return found


def static_checks(settings: Settings) -> list[Finding]:
    return [
        *check_store_url(settings),
        *check_routes(settings),
        *check_openai(settings),
        *check_local_model(settings),
    ]


async def startup_errors(settings: Settings) -> list[Finding]:
    """What makes `serve` and `worker` refuse to start (no provider is contacted)."""
    found = [f for f in static_checks(settings) if f.level == "error"]
    if not any(f.check == "store" for f in found):
        found += [f for f in await check_store(settings) if f.level == "error"]
    return found


async def doctor_findings(settings: Settings) -> list[Finding]:
    found = static_checks(settings) + await asyncio.to_thread(check_sandbox)
    if not any(f.check == "store" for f in found):
        found += await check_store(settings)
    found += await probe_openai(settings)
    return found
