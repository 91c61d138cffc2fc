"""Parse every file once (HCL, YAML, JSON), optionally through a content-hash cache on disk.

The cache (`--cache DIR`) maps sha256(parser version + language + text) to the pickled parse
result, so an unchanged file is never parsed twice across runs. It is off unless asked for;
entries that cannot be read back are parsed again and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mezzo.threatscan import hcl, terraform
from mezzo.threatscan.sources import SourceFile
from mezzo.threatscan.yamlload import DocumentError, load_documents

CACHE_VERSION = "mezzo-threatscan-parse/1"


@dataclass(frozen=True)
class Unparseable:
    reason: str


def parse_one(source: SourceFile) -> Any:
    """HCL: (attributes, blocks); YAML/JSON: documents; or Unparseable with the reason."""
    if source.language in ("terraform", "tfvars") or terraform.is_tfvars(source.path):
        result = terraform.parse_source(source)
        if isinstance(result, hcl.HclError):
            return Unparseable(f"unparseable HCL: {result}")
        return result
    try:
        return load_documents(source.text)
    except DocumentError as exc:
        if source.language == "json":
            return Unparseable(_json_reason(source.text, exc))
        hint = (
            " (an unrendered Helm template? run `helm template` first)"
            if "{{" in source.text
            else ""
        )
        return Unparseable(f"unparseable YAML: {exc}{hint}")


def _json_reason(text: str, error: DocumentError) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"unparseable JSON: {exc.msg} at line {exc.lineno}"
    except RecursionError:
        return "unparseable JSON: nested too deeply"
    return f"unparseable JSON: {error}"


def parse_all(sources: list[SourceFile], cache: Path | None = None) -> dict[str, Any]:
    if cache is None:
        return {source.path: parse_one(source) for source in sources}
    cache.mkdir(parents=True, exist_ok=True)
    parsed: dict[str, Any] = {}
    for source in sources:
        key = hashlib.sha256(
            f"{CACHE_VERSION}\0{source.language}\0{source.path.endswith('.tfvars.json')}\0".encode()
            + source.text.encode()
        ).hexdigest()
        entry = cache / key[:2] / key
        result = _read(entry)
        if result is None:
            result = parse_one(source)
            _write(entry, result)
        parsed[source.path] = result
    return parsed


def _read(entry: Path) -> Any:
    try:
        with entry.open("rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None


def _write(entry: Path, result: Any) -> None:
    try:
        entry.parent.mkdir(exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=entry.parent)
        with os.fdopen(descriptor, "wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, entry)
    except (OSError, pickle.PicklingError, RecursionError):
        return
