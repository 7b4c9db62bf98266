"""Approval decisions: apply a reviewer's edits to a draft and describe what changed. Pure."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from pydantic import BaseModel

from runner.messages import summarise


class EditError(ValueError):
    """Edits that are not allowed or do not fit the draft's schema; nothing was applied."""


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`--set field=value` pairs; a value that parses as JSON is taken as JSON, else as text."""
    edits: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise EditError(f"--set '{pair}': write it as field=value")
        name, raw = pair.split("=", 1)
        try:
            edits[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            edits[name.strip()] = raw
    return edits


def apply_edits(draft: Any, edits: dict[str, Any], editable: list[str],
                model: type[BaseModel] | None) -> Any:
    if not edits:
        return draft
    not_allowed = sorted(set(edits) - set(editable))
    if not_allowed:
        allowed = ", ".join(editable) if editable else "none"
        raise EditError(f"field(s) {', '.join(not_allowed)} are not editable (editable: {allowed})")
    if not isinstance(draft, dict):
        raise EditError("this draft is not an object; it cannot be edited field by field")
    edited = {**draft, **edits}
    if model is not None:
        try:
            edited = model.model_validate(edited).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            problems = summarise(exc.errors())
            raise EditError(f"the edited draft does not fit its schema: {problems}") from None
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
