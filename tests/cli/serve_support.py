"""A real `mezzo serve` subprocess whose stderr is read line by line while it runs."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from core_support import ROOT


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.pop("COLUMNS", None)  # lines must not wrap at rich's default width of 80
    env.update({"MEZZO_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with one empty folder: no bwrap, no socat."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return str(empty)


class Serve:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mezzo.cli", "serve", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first stderr line (so far or to come) that matches `pattern`."""
        compiled = re.compile(pattern)
        for line in self.lines:
            if found := compiled.search(line):
                return found
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matched {pattern!r}:\n" + self.text()) from None
            if line is None:
                raise AssertionError(f"serve ended before {pattern!r}:\n" + self.text())
            self.lines.append(line)
            if found := compiled.search(line):
                return found

    def stop(self) -> str:
        """Stop the server; its whole stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)
        while (line := self._new.get(timeout=10)) is not None:
            self.lines.append(line)
        return self.text()

    def text(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
