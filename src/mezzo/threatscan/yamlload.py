"""YAML/JSON documents whose mappings remember their line numbers (PyYAML marks)."""

from __future__ import annotations

from typing import Any

import yaml

from mezzo.threatscan.model import LineDict

try:
    _Base: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Base = yaml.SafeLoader

MAX_DOCUMENTS = 10_000
MAX_FLOW_DEPTH = 500  # libyaml recurses in C on flow collections; deep nesting crashes it


class _LineLoader(_Base):
    pass


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable mapping key", key_node.start_mark
            )
        text_key = str(key)
        mapping[text_key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[text_key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class DocumentError(ValueError):
    pass


def load_documents(text: str) -> list[Any]:
    """All documents of a (multi-document) YAML or JSON text; mappings are `LineDict`s."""
    if _flow_depth_exceeds(text, MAX_FLOW_DEPTH):
        raise DocumentError(f"flow collections nested deeper than {MAX_FLOW_DEPTH} levels")
    try:
        documents = []
        for document in yaml.load_all(text, Loader=_LineLoader):
            documents.append(document)
            if len(documents) > MAX_DOCUMENTS:
                raise DocumentError(f"more than {MAX_DOCUMENTS} documents")
        return documents
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise DocumentError(f"{problem}{where}") from None
    except RecursionError:
        raise DocumentError("document nested too deeply") from None


def _flow_depth_exceeds(text: str, limit: int) -> bool:
    """Upper bound on [ { nesting (quotes ignored, so it errs towards refusing)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth = max(0, depth - 1)
    return False
