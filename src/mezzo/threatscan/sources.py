"""Find the files to scan under a target: bounded, loop-safe, text only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mezzo.threatscan.model import Skipped

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES = 50_000
IGNORED_DIRS = frozenset({".git", ".terraform", "node_modules", "__pycache__", ".venv"})
SUFFIXES = {".tf": "terraform", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the scan root, forward slashes
    language: str
    text: str


def discover(root: Path) -> tuple[list[SourceFile], list[Skipped]]:
    """Walk `root` without following symlinks out of it or around a loop; read candidate files."""
    root = root.resolve()
    if root.is_file():
        candidates = [root]
        base = root.parent
    else:
        candidates = list(_walk(root))
        base = root
    sources: list[SourceFile] = []
    skipped: list[Skipped] = []
    for path in sorted(candidates):
        rel = path.relative_to(base).as_posix()
        language = SUFFIXES.get(path.suffix.lower())
        if language is None:
            continue
        if len(sources) >= MAX_FILES:
            skipped.append(Skipped(rel, f"more than {MAX_FILES} files; the rest were not read"))
            break
        text, reason = _read_text(path)
        if text is None:
            skipped.append(Skipped(rel, reason))
        else:
            sources.append(SourceFile(rel, language, text))
    return sources, skipped


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                inside = target == str(root) or target.startswith(str(root) + os.sep)
                if not inside or target in seen_dirs:
                    continue
            if entry.is_dir():
                if entry.name not in IGNORED_DIRS:
                    stack.append(entry.path)
            elif entry.is_file():
                real_file = os.path.realpath(entry.path)
                if real_file not in seen_files:
                    seen_files.add(real_file)
                    found.append(Path(entry.path))
    return found


def _read_text(path: Path) -> tuple[str | None, str]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, f"file too large ({size} bytes > {MAX_FILE_BYTES})"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if b"\x00" in data[:8192]:
        return None, "binary file"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
