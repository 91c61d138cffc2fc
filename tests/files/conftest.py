from __future__ import annotations

from pathlib import Path

import pytest

from mezzo.files import FileInfo, FileStore


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "files")


@pytest.fixture
def attach(store: FileStore):
    async def attach(path: Path, workspace: str = "ws1", max_bytes: int = 1 << 34) -> FileInfo:
        return await store.save_file(workspace, path, max_bytes)

    return attach
