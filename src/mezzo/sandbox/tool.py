"""The `run_code` tool agents call: code (and files) in, a trimmed text result out."""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from mezzo.sandbox.result import ExecResult
from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import KiB, MiB, Mount, SandboxSpec, SpecError

Language = Literal["python", "shell"]
WORKSPACE = "/workspace"
ENTRY_FILES: dict[str, tuple[str, list[str]]] = {
    "python": ("main.py", ["python3", "main.py"]),
    "shell": ("main.sh", ["/bin/sh", "main.sh"]),
}
TOOL_SPEC = SandboxSpec(
    time_limit_s=30,
    memory_limit_bytes=512 * MiB,
    pid_limit=128,
    output_limit_bytes=256 * KiB,
)
DEFAULT_MAX_CHARS = 12_000  # about 3,000 tokens of the model's context

_shared: Sandbox | None = None


def shared_sandbox() -> Sandbox:
    global _shared
    if _shared is None:
        _shared = Sandbox()
    return _shared


def _checked_name(name: str) -> str:
    normalized = posixpath.normpath(name)
    if (
        not name
        or name.startswith("/")
        or normalized.startswith("..")
        or normalized != name
        or "\0" in name
    ):
        raise SpecError(f"file name {name!r} must be a plain relative path")
    return normalized


async def run_code(
    language: Language,
    code: str,
    files: dict[str, str] | None = None,
    *,
    spec: SandboxSpec | None = None,
    sandbox: Sandbox | None = None,
) -> ExecResult:
    """Run `code` as `main.py` / `main.sh` in a fresh sandbox, next to `files`, in /workspace.

    The folder is the sandbox's only writable mount and is deleted afterwards; the network is
    off unless `spec.allow_net` says otherwise.
    """
    if language not in ENTRY_FILES:
        raise SpecError(f"language must be 'python' or 'shell', not {language!r}")
    entry, command = ENTRY_FILES[language]
    named = {_checked_name(name): content for name, content in (files or {}).items()}
    if entry in named:
        raise SpecError(f"{entry} is the code itself; give the other files other names")
    base = spec or TOOL_SPEC
    folder = Path(tempfile.mkdtemp(prefix="mezzo-run-code-"))
    try:
        for name, content in {**named, entry: code}.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        run_spec = SandboxSpec.build(
            **{
                **base.model_dump(exclude={"mounts", "workdir"}),
                "mounts": (*base.mounts, Mount(source=folder, target=WORKSPACE, writable=True)),
                "workdir": WORKSPACE,
            }
        )
        return await (sandbox or shared_sandbox()).run(command, run_spec)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = max(limit - 60, 0)
    head, tail = text[: keep - keep // 2], text[len(text) - keep // 2 :] if keep // 2 else ""
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters trimmed ...]\n{tail}"


def render_result(result: ExecResult, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The text an agent sees: status line, then stdout and stderr, within `max_chars`."""
    if result.timed_out:
        status = f"timed out after {result.duration_s:.1f}s (killed)"
    elif result.signal is not None:
        status = f"killed by signal {result.signal}"
    else:
        status = f"exit code {result.exit_code}"
    if result.stdout_truncated or result.stderr_truncated:
        status += "; output was longer than the sandbox keeps, middle elided"
    header = f"[{status}; {result.duration_s:.2f}s]"
    budget = max(max_chars - len(header) - 40, 0)
    stdout, stderr = result.stdout, result.stderr
    if len(stdout) + len(stderr) > budget:
        stderr_share = min(len(stderr), max(budget // 3, budget - len(stdout)))
        stderr = _trim(stderr, stderr_share)
        stdout = _trim(stdout, budget - len(stderr))
    parts = [header]
    if stdout:
        parts += ["[stdout]", stdout.rstrip("\n")]
    if stderr:
        parts += ["[stderr]", stderr.rstrip("\n")]
    if not stdout and not stderr:
        parts.append("(no output)")
    return "\n".join(parts)[:max_chars]
