"""Find the files to scan under a target: bounded, loop-safe, text only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mezzo.threatscan.model import Skipped

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES = 50_000
IGNORED_DIRS = frozenset({".git", ".terraform", "node_modules", "__pycache__", ".venv"})
SUFFIXES = {
    ".tf": "terraform",
    ".tfvars": "tfvars",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
}


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the scan root, forward slashes
    language: str
    text: str


def discover(root: Path) -> tuple[list[SourceFile], list[Skipped]]:
    """Walk `root` without following symlinks out of it or around a loop; read candidate files."""
    root = root.resolve()
    skipped: list[Skipped] = []
    if root.is_file():
        candidates = [root]
        base = root.parent
    else:
        candidates = _walk(root, skipped)
        base = root
    sources: list[SourceFile] = []
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


def _walk(root: Path, skipped: list[Skipped]) -> list[Path]:
    """Every regular file under root; an entry that cannot be examined is skipped with a note."""
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
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            if directory != str(root):
                skipped.append(Skipped(_relative(directory, root), _unreadable(exc)))
            continue
        for entry in entries:
            try:
                _visit(entry, root, seen_dirs, seen_files, stack, found)
            except (OSError, RuntimeError, ValueError) as exc:  # ELOOP, EACCES, odd names
                skipped.append(Skipped(_relative(entry.path, root), _unreadable(exc)))
    return found


def _visit(
    entry: os.DirEntry[str],
    root: Path,
    seen_dirs: set[str],
    seen_files: set[str],
    stack: list[str],
    found: list[Path],
) -> None:
    if entry.is_symlink():
        target = os.path.realpath(entry.path, strict=True)  # a loop raises OSError(ELOOP)
        inside = target == str(root) or target.startswith(str(root) + os.sep)
        if not inside or target in seen_dirs:
            return
    if entry.is_dir():
        if entry.name not in IGNORED_DIRS:
            stack.append(entry.path)
    elif entry.is_file():
        real_file = os.path.realpath(entry.path)
        if real_file not in seen_files:
            seen_files.add(real_file)
            found.append(Path(entry.path))


def _relative(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def _unreadable(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"not scanned: {reason}"


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
