"""What a person reads, in the ops team's language: status and decision words, and numbers formatted the
way a report writes them (thousands separators, sensible decimals, 万/亿 on request). One place, so the
console, the web page, the reports and the IM cards say the same thing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from runner.i18n import N_, _

STATUS = {
    # runs
    "done": N_("status|done"), "failed": N_("status|failed"), "waiting": N_("status|waiting for approval"),
    "running": N_("status|running"), "cancelled": N_("status|cancelled"), "interrupted": N_("status|interrupted"),
    "queued": N_("status|queued"), "moved": N_("status|taken over by another process"),
    # steps
    "skipped": N_("status|skipped"), "approved": N_("status|approved"), "rejected": N_("status|rejected"),
    # decisions
    "approve": N_("decision|approve"), "reject": N_("decision|reject"),
}


def status(word: Any) -> str:
    """A status or decision word in the user's language; anything unknown as it is."""
    if word is None:
        return "—"
    return worded(STATUS[str(word)]) if str(word) in STATUS else str(word)


def statuses() -> dict[str, str]:
    """Every status and decision word, in the user's language (the pages' `labels`)."""
    return {key: worded(message) for key, message in STATUS.items()}


def worded(message: str) -> str:
    """A short word with its context (`status|done`): its translation, else the word after the bar (one English
    word means different things in different places, so the catalog keeps them apart)."""
    found = _(message)
    return found.split("|", 1)[1] if found == message else found


def fire_action(action: str) -> str:
    """What a schedule's firing did (`started`, `error`, `skipped: why`), in the user's language."""
    if action.startswith("skipped"):
        return _("skipped ({why})").format(why=action.split(":", 1)[-1].strip())
    return {"started": _("started"), "error": _("error")}.get(action, action)


def number(value: Any, decimals: int = 2, suffix: str = "") -> str:
    """9000.0 → '9,000'; 0.12345 → '0.12'; None → '—'; booleans 是/否: numbers as a report shows them. The
    suffix (e.g. '%') follows a number only, never the dash; '万' or '亿' also scales: 1234567, 1, '万' →
    '123.5万'. The page's and the templates' `number` filter both come here."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _("infinite") if math.isinf(value) else _("not a number")
    rounded = round(float(value / {"万": 1e4, "亿": 1e8}.get(suffix, 1)), decimals)
    text = f"{rounded:,.0f}" if rounded == int(rounded) else f"{rounded:,.{decimals}f}".rstrip("0")
    return text + suffix


def usage_line(tokens: int, cost: float, currency: str) -> str:
    """`tokens 5,571 · 费用 0.0312 CNY`: what a run or a step has used so far."""
    return _("tokens {tokens} · cost {cost} {currency}").format(tokens=number(tokens), cost=f"{cost:.4f}",
                                                                currency=currency)


def readable(value: Any, limit: int = 200, schema: Any = None) -> str:
    """A value as one line a person reads (outputs on the console): numbers formatted, yes/no, "—" for nothing,
    lists joined with 、 and objects as 键：值 — not JSON with its 9000.0, null and true. Built piece by piece
    and stopped at the limit: a 200,000-row output costs its first pieces, not its whole text. Keys are shown
    by their title when the value's JSON Schema gives one."""
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value, schema):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    shown = "".join(pieces)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _pieces(v: Any, schema: Any = None) -> Iterator[str]:
    if v is None:
        yield "—"
    elif isinstance(v, bool | int | float):
        yield number(v)
    elif isinstance(v, dict):
        yield "{"
        for i, (k, x) in enumerate(v.items()):
            yield f"{'，' if i else ''}{label(k, schema)}："
            yield from _pieces(x, field_schema(schema, str(k)))
        yield "}"
    elif isinstance(v, list | tuple):
        separator = "；" if any(isinstance(x, dict) for x in v) else "、"
        yield "["
        for i, x in enumerate(v):
            if i:
                yield separator
            yield from _pieces(x, item_schema(schema))
        yield "]"
    else:
        yield str(v)


def field_schema(schema: Any, key: str) -> Any:
    """The schema of one field of an object schema, or None."""
    if not isinstance(schema, dict):
        return None
    return (schema.get("properties") or {}).get(key)


def item_schema(schema: Any) -> Any:
    return schema.get("items") if isinstance(schema, dict) else None


def label(key: Any, schema: Any) -> str:
    """A field's label: its schema `title` when the playbook gave one, else its name."""
    title = (field_schema(schema, str(key)) or {}).get("title")
    if not title or title == str(key).replace("_", " ").title():  # pydantic's own title is just the name
        return str(key)
    return str(title)


def outline(value: Any, schema: Any = None, *, max_lines: int = 80) -> str:
    """A draft as a person reads it in a terminal — each field under its title, list items numbered, a row of a
    table on one line as 标题：值 · 标题：值 — not JSON with its keys, quotes and 0.0."""
    lines: list[str] = []
    _outline(value, schema, 0, lines)
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], _("…({count} more lines: the approval page shows all of it)").format(
            count=len(lines) - max_lines)]
    return "\n".join(lines)


def _inline(value: Any) -> str | None:
    """A scalar, or a list of scalars, on one line; None for anything nested."""
    if isinstance(value, list | tuple):
        parts = [_inline(v) for v in value]
        return None if any(p is None or isinstance(v, list | tuple) for p, v in zip(parts, value, strict=True)) \
            else _("、").join(p for p in parts if p is not None) or _("(empty)")
    if isinstance(value, dict):
        return None
    return "—" if value is None else number(value) if isinstance(value, bool | int | float) else str(value)


def _outline(value: Any, schema: Any, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        for key, inner in value.items():
            text = _inline(inner)
            if text is not None:
                lines.append(f"{pad}{label(key, schema)}：{text}".replace("\n", "\n" + pad + "  "))
            else:
                lines.append(f"{pad}{label(key, schema)}：")
                _outline(inner, field_schema(schema, str(key)), depth + 1, lines)
    elif isinstance(value, list | tuple):
        item = item_schema(schema)
        for number_, inner in enumerate(value, start=1):
            if isinstance(inner, dict) and all(_inline(v) is not None for v in inner.values()):
                lines.append(f"{pad}{number_}. " + " · ".join(f"{label(k, item)}：{_inline(v)}"
                                                             for k, v in inner.items()))
            elif (text := _inline(inner)) is not None:
                lines.append(f"{pad}{number_}. {text}")
            else:
                lines.append(f"{pad}{number_}.")
                _outline(inner, item, depth + 1, lines)
        if not value:
            lines.append(pad + _("(empty)"))
    else:
        lines.append(pad + (_inline(value) or ""))
