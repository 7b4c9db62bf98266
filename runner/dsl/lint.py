"""Warnings for text that holds another tool's template syntax — Dify's `{{#node.var#}}` or a bare
`{{ name }}` — which would reach the model literally. Pure: spec in, (location, message) out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner.dsl.spec import PlaybookSpec
from runner.i18n import _

_FOREIGN = re.compile(r"(?<![$\w])\{\{\s*(#?)\s*([A-Za-z_][\w.]*)\s*#?\s*\}\}")


def foreign_templates(spec: PlaybookSpec) -> list[tuple[tuple[Any, ...], str]]:
    found = []
    for path, text in _texts(spec):
        for match in _FOREIGN.finditer(text):
            found.append((path, _("'{written}' is not an expression here and is sent as written; did you mean "
                                  "'{meant}'?").format(
                                    written=match.group(0),
                                    meant=_suggest(spec, match.group(1) == '#', match.group(2)))))
    return found


def _suggest(spec: PlaybookSpec, dify: bool, name: str) -> str:
    parts = name.split(".")
    ids = {s.id for s in spec.steps}
    if dify and len(parts) >= 2 and parts[0] in ids:  # {{#node.var#}}: a node's output variable
        return "${{ steps." + parts[0] + ".output." + ".".join(parts[1:]) + " }}"
    if dify and parts[0] in ("sys", "start") and len(parts) > 1 and parts[1] in spec.inputs:
        return "${{ inputs." + parts[1] + " }}"
    if parts[0] in spec.inputs:
        return "${{ inputs." + name + " }}"
    if parts[0] in ids:
        return "${{ steps." + name + " }}"
    return "${{ " + name + " }}"


def _texts(spec: PlaybookSpec) -> Iterator[tuple[tuple[Any, ...], str]]:
    for i, step in enumerate(spec.steps):
        for path, value, _reads_item in step.described.texts(step, step.kind_spec):
            yield from _strings(("steps", i, *path), value)
    yield from _strings(("outputs",), spec.outputs)


def _strings(path: tuple[Any, ...], value: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _strings((*path, key), inner)
    elif isinstance(value, list):
        for j, inner in enumerate(value):
            yield from _strings((*path, j), inner)
