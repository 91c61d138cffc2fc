"""The SDK's surface: what importing it loads, and which names it exports.

A program that talks to a mezzo server over HTTP imports the wire models and the HTTP transport,
never the engine, the governor, the store, the file parsers, tiktoken or the server (the engine
is imported when a workspace is opened without a URL). The public names are pinned, as httpx's
tests/test_exported_members.py does, so the API cannot grow by accident.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType

import pytest

import mezzo
import mezzo.client

# Every mezzo module `import mezzo.client` may load: the SDK, the wire models and what they need.
SDK_MODULES = [
    "mezzo",
    "mezzo.bounds",
    "mezzo.client",
    "mezzo.client.events",
    "mezzo.client.http",
    "mezzo.client.transport",
    "mezzo.client.workspace",
    "mezzo.errors",
    "mezzo.files",
    "mezzo.files.errors",
    "mezzo.files.models",
    "mezzo.protocol",
    "mezzo.text",
    "mezzo.tools",
    "mezzo.tools.context",
    "mezzo.tools.lanes",
    "mezzo.tools.registry",
]
NOT_FOR_THE_SDK = ["tiktoken", "fastapi", "starlette", "uvicorn", "redis", "openai", "re2"]


def imported_by(statement: str) -> dict[str, list[str]]:
    script = (
        f"import sys, json\n{statement}\n"
        "print(json.dumps({'mezzo': sorted(m for m in sys.modules if m.split('.')[0] == 'mezzo'),"
        " 'all': sorted(sys.modules)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, list[str]] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import mezzo.client",
        "from mezzo.client import AgentWorkspace, AgentEvent, shutdown",
        "from mezzo import AgentWorkspace",
    ],
)
def test_the_http_sdk_imports_only_the_wire_models(statement: str) -> None:
    loaded = imported_by(statement)
    assert loaded["mezzo"] == SDK_MODULES
    tops = {name.split(".")[0] for name in loaded["all"]}
    assert [name for name in NOT_FOR_THE_SDK if name in tops] == []


def test_importing_mezzo_alone_loads_only_the_package() -> None:
    assert imported_by("import mezzo")["mezzo"] == ["mezzo"]


def test_embedded_mode_is_imported_when_used() -> None:
    loaded = imported_by("import mezzo.client.embedded")
    assert "mezzo.service" in loaded["mezzo"]
    assert "mezzo.client.embedded" not in SDK_MODULES


def public_names(module: ModuleType) -> set[str]:
    """What the module itself defines or re-exports: classes and functions, not submodules,
    `from __future__` features or typing helpers it imported for itself."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and getattr(value, "__module__", "").startswith("mezzo")
    }


def test_mezzo_exports() -> None:
    assert mezzo.__all__ == ["AgentEvent", "AgentWorkspace", "__version__"]
    assert mezzo.AgentWorkspace is mezzo.client.AgentWorkspace
    assert mezzo.AgentEvent is mezzo.client.AgentEvent
    assert public_names(mezzo) <= set(mezzo.__all__)


def test_mezzo_client_exports() -> None:
    assert mezzo.client.__all__ == ["AgentEvent", "AgentWorkspace", "shutdown"]
    assert public_names(mezzo.client) == set(mezzo.client.__all__)
    exported: dict[str, object] = {}
    exec("from mezzo.client import *", exported)
    assert sorted(k for k in exported if k != "__builtins__") == mezzo.client.__all__
