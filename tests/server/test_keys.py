"""Storage keys are named in `mezzo.keys` only: no module builds one inline, the modules that
still keep a constant of their own agree with it, and docs/architecture.md lists them all."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from core_support import ROOT
from mezzo import keys
from mezzo.engine import presence, snapshot, worker
from mezzo.sandbox import worker as sandbox_worker

SRC = ROOT / "src" / "mezzo"
PREFIXES = tuple(
    value
    for name, value in vars(keys).items()
    if name.isupper() and isinstance(value, str) and value.endswith(("/", ":"))
)
# Modules of other areas that still build their keys inline; each moves to `mezzo.keys` with
# its owner's next change. A module not listed here must not build one.
NOT_YET_MOVED: set[str] = set()


def inline_keys(path: Path) -> list[int]:
    """Lines of `path` with a string literal (an f-string's first part too) that starts with a
    key prefix."""
    return sorted(
        {
            node.lineno
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(PREFIXES)
        }
    )


def test_no_module_builds_a_storage_key_inline() -> None:
    found = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        # The store names its own structures (event logs, queue, ledger) inside itself.
        if path != SRC / "keys.py"
        and "store" not in path.relative_to(SRC).parts[:1]
        and inline_keys(path)
    }
    assert found <= NOT_YET_MOVED, sorted(found - NOT_YET_MOVED)


def test_the_finder_sees_an_inline_key(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('A = "idle"\nB = f"apikey/{x}"\nC = "throttle:" + y\n')
    assert inline_keys(module) == [2, 3]


def test_modules_with_their_own_names_agree_with_the_keys_module() -> None:
    assert presence.worker_key("w1") == keys.worker("w1")
    assert presence.drain_key("w1") == keys.drain("w1")
    assert snapshot.snapshot_key("run_1") == keys.snapshot("run_1")
    assert worker.RUN_QUEUE == keys.RUN_QUEUE
    assert worker.run_job_id("run_1") == keys.run_job("run_1")
    assert sandbox_worker.QUEUE == keys.SANDBOX_QUEUE
    assert sandbox_worker.result_key("j1") == keys.sandbox_result("j1")


def test_the_architecture_page_lists_every_key() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert keys.markdown() in page, "regenerate the table: python -m mezzo.keys"
    patterns = [entry.pattern for entry in keys.SCHEMA]
    assert len(patterns) == len(set(patterns))


def test_every_module_the_architecture_page_names_exists() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"(?<![\w/.-])((?:[a-z_]+/)*[a-z_*]+\.py)\b", page))
    missing = [
        path
        for path in sorted(named)
        if not list(
            (ROOT if path.startswith(("src/", "tests/", "bench/", "scripts/")) else SRC).glob(path)
        )
    ]
    assert len(named) > 20 and not missing, missing
