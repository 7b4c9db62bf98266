"""Assertion paths: `steps.label.output[*].sentiment` → the values it names in a captured run. Pure."""

from __future__ import annotations

import re
from typing import Any

from runner.i18n import _

STAR = "*"
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\*|-\d+)\]")


class PathSyntaxError(ValueError):
    pass


class PathMissing(LookupError):
    """The path does not exist in this run; the message names the part that is missing and what is there."""


def parse_path(text: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise PathSyntaxError(_("unexpected '{name}'; write a.b[0].c or a[*].b").format(name=text[pos:]))
        name, index = match.groups()
        parts.append(name if name is not None else (STAR if index == STAR else int(index)))
        pos = match.end()
    if not parts or not isinstance(parts[0], str):
        raise PathSyntaxError(_("a path starts with outputs, steps, run or approvals"))
    if parts[0] not in ("outputs", "steps", "run", "approvals"):
        raise PathSyntaxError(_("'{name}' is not a root; start with outputs, steps, run or approvals").format(
                                  name=parts[0]))
    return parts


def show(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) or p == STAR else (f".{p}" if out else p)
    return out


def resolve(parts: list[str | int], record: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every (concrete path, value) the path names; `[*]` fans out over a list."""
    found: list[tuple[str, Any]] = []
    _walk(record, parts, [], found)
    return found


def _walk(value: Any, rest: list[str | int], done: list[str | int], found: list[tuple[str, Any]]) -> None:
    if not rest:
        found.append((show(done), value))
        return
    head, tail = rest[0], rest[1:]
    if head == STAR:
        if not isinstance(value, list):
            raise PathMissing(_("{path} is {kind}, not a list, so [*] has nothing to go over").format(
                                  path=show(done), kind=_kind(value)))
        for i, item in enumerate(value):
            _walk(item, tail, [*done, i], found)
        return
    if isinstance(head, int):
        if not isinstance(value, list):
            raise PathMissing(_("{path} is {kind}, not a list").format(path=show(done), kind=_kind(value)))
        if not -len(value) <= head < len(value):
            raise PathMissing(_("{path} has {count} item(s); there is no [{head}]").format(
                                  path=show(done), count=len(value), head=head))
        _walk(value[head], tail, [*done, head], found)
        return
    if not isinstance(value, dict):
        raise PathMissing(_("{path} is {kind}; it has no field '{head}'").format(
                              path=show(done), kind=_kind(value), head=head))
    if head not in value:
        fields = ", ".join(sorted(map(str, value))[:12]) or _("none")
        raise PathMissing(_("{path} has no field '{head}' (fields: {fields})").format(
                              path=show(done) or _("the run"), head=head, fields=fields))
    _walk(value[head], tail, [*done, head], found)


def _kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    return f"a {type(value).__name__}"
