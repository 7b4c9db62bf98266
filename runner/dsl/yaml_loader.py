"""YAML → plain Python data plus a map of line:column marks keyed by the value's path.

Paths are tuples of keys and list indexes, e.g. ("steps", 2, "llm", "prompt"). Each path maps to
the mark of its value; ("steps", 2, "llm", "prompt", KEY) maps to the mark of the key itself,
which is where an "unknown field" error should point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from runner.errors import Diagnostic, LoadError

Path = tuple[Any, ...]
KEY = "<key>"
MAX_VALUES = 200_000  # values a document may expand to: far above any playbook, far below a YAML bomb


@dataclass
class SourceMap:
    """Where every value of a loaded document came from."""

    file: str
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int]:
        """The mark of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (1, 1))

    def locate_key(self, path: Path) -> tuple[int, int]:
        return self.marks.get((*tuple(path), KEY)) or self.locate(path)

    def diag(self, path: Path, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.locate_key(path) if key else self.locate(path)
        return Diagnostic(self.file, line, col, message)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, source: SourceMap) -> None:
        self.loader = loader
        self.source = source

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.source.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise self._error(key_node, "mapping keys must be plain scalars")
                if key in result:
                    raise self._error(key_node, f"duplicate key '{key}'")
                child = (*path, key)
                self.source.marks[(*child, KEY)] = (key_node.start_mark.line + 1,
                                                    key_node.start_mark.column + 1)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _error(self, node: yaml.Node, message: str) -> LoadError:
        mark = node.start_mark
        return LoadError([Diagnostic(self.source.file, mark.line + 1, mark.column + 1, message)])


_TOO_BIG = (f"the document expands to more than {MAX_VALUES:,} values (anchors and aliases repeating each other — "
            "a YAML bomb?); write the values out or make the file smaller")


def expanded_size(node: yaml.Node, limit: int = MAX_VALUES) -> int:
    """How many values `node` stands for once every alias is expanded — computed on the shared node graph,
    so a bomb is measured without being expanded. Stops counting past `limit`."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        known = sizes.get(id(current))
        if known is not None:
            return known
        total = 1
        if isinstance(current, yaml.SequenceNode):
            total += sum(size(child) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in current.value)
        sizes[id(current)] = total = min(total, limit + 1)
        return total

    return size(node)


def safe_load(text: str, file: str) -> Any:
    """yaml.safe_load with a bound on alias expansion — for inputs files, scripts, cassettes: every YAML
    read from a user or a disk. Raises LoadError naming the file."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_VALUES:
            raise LoadError([Diagnostic(file, node.start_mark.line + 1, node.start_mark.column + 1, _TOO_BIG)])
        return loader.construct_document(node)
    except RecursionError:
        raise LoadError([Diagnostic(file, 1, 1, "the document is nested too deeply")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Diagnostic(file, line, col, f"invalid YAML: {exc.problem or exc.context}")]) from None
    finally:
        loader.dispose()


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document, keeping marks. Raises LoadError with the position of the fault."""
    source = SourceMap(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise LoadError([Diagnostic(file, 1, 1, "the file is empty; a playbook needs at least "
                                                    "'name' and 'steps'")])
        if expanded_size(node) > MAX_VALUES:
            raise LoadError([Diagnostic(file, node.start_mark.line + 1, node.start_mark.column + 1, _TOO_BIG)])
        return _Builder(loader, source).build(node, ()), source
    except RecursionError:
        raise LoadError([Diagnostic(file, 1, 1, "the document is nested too deeply")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        hint = ""
        if "found character '\\t'" in str(exc):
            hint = "; indent with spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "; quote values that contain ': '"
        elif "stream end" in problem:
            hint = "; a bracket or quote is not closed"
        elif "expected ',' or '}'" in problem:
            hint = "; inside {…} quote values that contain ? : , [ ] { }"
        raise LoadError([Diagnostic(file, line, col, f"invalid YAML: {problem}{hint}")]) from None
    finally:
        loader.dispose()
