"""Format-aware files: attachments stored by reference, streaming parsers, indexes and the
query tools an agent uses instead of reading raw bytes."""

from mezzo.files.errors import FileError, FileFormatError, FileNotFound, FileTooLarge, QueryError
from mezzo.files.models import Compression, FileFormat, FileInfo
from mezzo.files.storage import FileStore
from mezzo.files.tools import FILE_TOOLS, summary_for_context

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
