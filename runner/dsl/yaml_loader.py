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
from runner.i18n import N_, _

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
                    raise self._error(key_node, _("mapping keys must be plain scalars"))
                if key in result:
                    raise self._error(key_node, _("duplicate key '{key}'").format(key=key))
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


_TOO_BIG = N_("the document expands to more than {limit:,} values (anchors and aliases repeating each other — a "
              "YAML bomb?); write the values out or make the file smaller")


def _too_big() -> str:
    return _(_TOO_BIG).format(limit=MAX_VALUES)


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


# libyaml's parser when PyYAML was built with it: 8 times faster on a 400 KB eval cassette. Its error messages
# differ, so a document it refuses is parsed again by the pure-Python parser, whose wording yaml_sentence knows.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def safe_load(text: str, file: str) -> Any:
    """yaml.safe_load with a bound on alias expansion — for inputs files, scripts, cassettes: every YAML
    read from a user or a disk. Raises LoadError naming the file."""
    if _FAST_LOADER is not None:
        try:
            return _safe_load(_FAST_LOADER(text), file)
        except LoadError:
            pass  # said again below in PyYAML's words
    return _safe_load(yaml.SafeLoader(text), file)


def _safe_load(loader: yaml.SafeLoader, file: str) -> Any:
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_VALUES:
            raise LoadError([Diagnostic(file, node.start_mark.line + 1, node.start_mark.column + 1, _too_big())])
        return loader.construct_document(node)
    except RecursionError:
        raise LoadError([Diagnostic(file, 1, 1, _("the document is nested too deeply"))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Diagnostic(file, line, col, _("invalid YAML: {problem}").format(
                                                         problem=exc.problem or exc.context))]) from None
    finally:
        loader.dispose()


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document, keeping marks. Raises LoadError with the position of the fault."""
    if _FAST_LOADER is not None:
        try:
            return _load_yaml(_FAST_LOADER(text), text, file)
        except LoadError:
            pass  # said again below in PyYAML's words
    return _load_yaml(yaml.SafeLoader(text), text, file)


def _load_yaml(loader: yaml.SafeLoader, text: str, file: str) -> tuple[Any, SourceMap]:
    source = SourceMap(file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise LoadError([Diagnostic(file, 1, 1, _("the file is empty; a playbook needs at least 'name' and "
                                                      "'steps'"))])
        if expanded_size(node) > MAX_VALUES:
            raise LoadError([Diagnostic(file, node.start_mark.line + 1, node.start_mark.column + 1, _too_big())])
        return _Builder(loader, source).build(node, ()), source
    except RecursionError:
        raise LoadError([Diagnostic(file, 1, 1, _("the document is nested too deeply"))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Diagnostic(file, line, col, yaml_sentence(exc, text))]) from None
    finally:
        loader.dispose()


def yaml_sentence(exc: yaml.MarkedYAMLError, text: str) -> str:
    """The parser's complaint as a sentence about the user's lines (most are about indentation)."""
    problem = exc.problem or exc.context or "invalid YAML"
    lines = text.splitlines()
    mark, start = exc.problem_mark, exc.context_mark
    if "found character '\\t'" in str(exc):
        return _("this line is indented with a tab; indent with spaces")
    if mark is not None and "expected <block end>" in problem:
        here = _indent(lines, mark.line)
        block = _indent(lines, start.line) if start is not None else here
        anchor = _(" (line {number}: `{text}`)").format(number=start.line + 1, text=lines[start.line].strip()) \
            if start is not None else ""
        if "<block sequence start>" in problem or lines[mark.line].lstrip().startswith("- "):
            sentence = _("this line is indented deeper than the list it belongs to{anchor}; the items of one list — "
                         "steps under `steps:` too — start with `- ` at the same indentation") if here > block else \
                _("this line is indented less than the list it belongs to{anchor}; the items of one list — steps "
                  "under `steps:` too — start with `- ` at the same indentation")
        else:
            sentence = _("this line is indented deeper than the lines it belongs with{anchor}; the keys of one "
                         "mapping (the fields of one step) line up at the same indentation") if here > block else \
                _("this line is indented less than the lines it belongs with{anchor}; the keys of one mapping (the "
                  "fields of one step) line up at the same indentation")
        return sentence.format(anchor=anchor)
    if mark is not None and "mapping values are not allowed" in problem:
        above = next((i for i in range(mark.line - 1, -1, -1) if lines[i].strip()), None)
        first_colon = lines[mark.line].find(":") == mark.column  # the key's own colon, not one inside a value
        if above is not None and first_colon and _indent(lines, mark.line) > _indent(lines, above) \
                and ":" in lines[above]:
            return (_("this line is indented deeper than line {number} (`{value}`), so YAML reads it as more of "
                      "that value; line `{name}:` up with the key above").format(
                        number=above + 1, value=lines[above].strip(), name=lines[mark.line].strip().split(':')[0]))
        return _("invalid YAML: a value holds ': ' where YAML expects a new key; quote values that contain ': '")
    # the parser's own words are replaced where the cause is known: a Chinese user reads the hint, not PyYAML
    if "stream end" in problem:
        return _("invalid YAML: the file ends inside a bracket or quote that is not closed")
    if "expected ',' or '}'" in problem:
        return _("invalid YAML: inside {…} quote values that contain ? : , [ ] { }, and close the {")
    return _("invalid YAML: {problem}").format(problem=problem)


def _indent(lines: list[str], index: int) -> int:
    line = lines[index] if 0 <= index < len(lines) else ""
    return len(line) - len(line.lstrip(" "))
