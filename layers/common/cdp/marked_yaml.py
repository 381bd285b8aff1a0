"""YAML read with line marks, for files people write (segments, import mappings, campaigns).

One loader for every such file: it remembers the line of each mapping, list and child value,
refuses duplicate keys (PyYAML keeps the last silently) and non-string keys, and reports every
problem through the caller's error factory as ``file:line: field: reason``, so each kind of file
keeps its own typed error (``InvalidSegment``, ``InvalidConfig``, ``InvalidCampaign``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from cdp.errors import CdpError

#: ``(error class)`` -> the error for ``source:line: path: reason``; fields file, line, field.
ErrorClass = Callable[..., CdpError]


class MarkedDict(dict):  # type: ignore[type-arg]
    line: int
    child_lines: dict[Any, int]


class MarkedList(list):  # type: ignore[type-arg]
    line: int
    child_lines: dict[Any, int]


def error(error_class: ErrorClass, source: str, line: int, path: str, reason: str) -> CdpError:
    where = f"{path}: " if path else ""
    return error_class(f"{source}:{line}: {where}{reason}", file=source, line=line, field=path)


class _Loader(yaml.SafeLoader):
    source_name = "<yaml>"
    error_class: ErrorClass = CdpError


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    result.child_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise error(loader.error_class, loader.source_name, line, "", f"keys must be strings (got {key!r})")
        if key in result:
            raise error(loader.error_class, loader.source_name, line, key, "duplicate key")
        result[key] = loader.construct_object(value_node, deep=True)
        result.child_lines[key] = value_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.child_lines = {i: child.start_mark.line + 1 for i, child in enumerate(node.value)}
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_marked(text: str, source_name: str, error_class: ErrorClass) -> Any:
    """The document in ``text``; any YAML problem raises ``error_class`` with the file and line."""
    loader = _Loader(text)
    loader.source_name = source_name
    loader.error_class = error_class
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise error(error_class, source_name, line, "", f"not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise error(error_class, source_name, 0, "", f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where a value sits (file, line, dotted field path), to raise errors that name it."""

    source: str
    line: int
    path: str
    error_class: ErrorClass

    @classmethod
    def root(cls, source: str, doc: Any, error_class: ErrorClass) -> Ctx:
        return cls(source, getattr(doc, "line", 1), "", error_class)

    def child(self, container: Any, key: Any) -> Ctx:
        line = getattr(container, "child_lines", {}).get(key, getattr(container, "line", self.line))
        path = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else key)
        return Ctx(self.source, line, path, self.error_class)

    def fail(self, reason: str) -> Any:
        """The error to raise (typed as the caller's class): ``raise ctx.fail("...")``."""
        return error(self.error_class, self.source, self.line, self.path, reason)
