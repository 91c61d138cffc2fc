"""Format-aware files: attachments stored by reference, streaming parsers, indexes and the
query tools an agent uses instead of reading raw bytes.

The store and the tools (with every format's parser) are imported on first use, so the SDK can
read `mezzo.files.models.FileInfo` without loading a parser.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mezzo.files.errors import FileError, FileFormatError, FileNotFound, FileTooLarge, QueryError
from mezzo.files.models import Compression, FileFormat, FileInfo

if TYPE_CHECKING:
    from mezzo.files.storage import FileStore
    from mezzo.files.tools import FILE_TOOLS, summary_for_context

_LAZY = {
    "FileStore": "mezzo.files.storage",
    "FILE_TOOLS": "mezzo.files.tools",
    "summary_for_context": "mezzo.files.tools",
}

__all__ = [
    "FILE_TOOLS",
    "Compression",
    "FileError",
    "FileFormat",
    "FileFormatError",
    "FileInfo",
    "FileNotFound",
    "FileStore",
    "FileTooLarge",
    "QueryError",
    "summary_for_context",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mezzo.files' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
