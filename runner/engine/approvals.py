"""Approval decisions: apply a reviewer's edits to a draft and describe what changed. Pure."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from pydantic import BaseModel

from runner.i18n import _
from runner.messages import kind_of, merged, summarise


class EditError(ValueError):
    """Edits that are not allowed or do not fit the draft's schema; nothing was applied. `problems`: (where in the
    draft, what is wrong) for a form to show each beside its field."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [("", message)]


def parse_set(pairs: list[str], draft: Any = None) -> dict[str, Any]:
    """`--set field=value` pairs, read as the approval hint and `-i` inputs are written: a field the draft holds
    as text takes the value as text; any other takes JSON or YAML flow (`[{name: 物流, count: 3}]`), else text."""
    texts = {k for k, v in draft.items() if isinstance(v, str)} if isinstance(draft, dict) else set()
    edits: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise EditError(_("--set '{pair}': write it as field=value").format(pair=pair))
        name, raw = pair.split("=", 1)
        edits[name.strip()] = raw if name.strip() in texts else _value(raw)
    return edits


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    if raw.lstrip()[:1] in ("[", "{"):  # YAML flow, as the hint shows it; bounded like every YAML we read
        from runner.dsl.yaml_loader import safe_load
        from runner.errors import PlaybookError

        try:
            return safe_load(raw, "--set")
        except PlaybookError as exc:
            reason = exc.diagnostics[0].message if exc.diagnostics else str(exc)
            raise EditError(_("--set value {raw!r} is neither JSON nor YAML flow ({reason}); write it like "
                              "'[{{name: 物流, count: 3}}]'").format(raw=raw, reason=reason)) from None
    return raw


def apply_edits(draft: Any, edits: dict[str, Any], editable: list[str],
                model: type[BaseModel] | None) -> Any:
    if not edits:
        return draft
    not_allowed = sorted(set(edits) - set(editable))
    if not_allowed:
        allowed = ", ".join(editable) if editable else "none"
        raise EditError(_("field(s) {joined} are not editable (editable: {allowed})").format(
                            joined=', '.join(not_allowed), allowed=allowed))
    if not isinstance(draft, dict):
        raise EditError(_("this draft is not an object; it cannot be edited field by field"))
    edited = {**draft, **edits}
    if model is not None:
        try:
            edited = model.model_validate(edited).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            raise EditError(_("the edited draft does not fit its schema: {problems}").format(
                problems=summarise(exc.errors())), merged(exc.errors())) from None
    return edited


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Changed leaves as [{path, before, after}]."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in list(before) + [k for k in after if k not in before]:
            out += diff(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True))
                for d in diff(b, a, f"{path}[{i}]")]
    return [] if before == after else [{"path": path or "$", "before": before, "after": after}]


MAX_SOURCES = 200  # passages kept with a pending approval: enough for a map of replies, bounded for the page


def sources_of(value: Any) -> list[dict[str, str]]:
    """An approval's `sources` as rendered — kb.search's passages, a list of them, or one list per item of a map
    (lists are flattened) — as [{cite, text}], each cite once. ValueError saying what was given otherwise."""
    found: dict[str, str] = {}

    def take(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for item in node:
                take(item)
        elif isinstance(node, dict) and isinstance(node.get("passages"), list):
            take(node["passages"])  # a kb.search output, or an item carrying one
        elif isinstance(node, dict) and isinstance(node.get("cite"), str) and isinstance(node.get("text"), str):
            found.setdefault(node["cite"], node["text"])
        else:
            raise ValueError(_("approval.sources must give passages with cite and text, as kb.search returns them "
                               "(or lists of them), not {value}").format(value=kind_of(node)))

    take(value)
    return [{"cite": cite, "text": text} for cite, text in list(found.items())[:MAX_SOURCES]]


def cited(draft: Any, sources: list[dict[str, str]]) -> list[dict[str, str]]:
    """The sources a draft names somewhere in its text, in the order given."""
    words = json.dumps(draft, ensure_ascii=False)
    return [s for s in sources if s["cite"] and s["cite"] in words]
