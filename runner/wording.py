"""What a person reads, in the ops team's language: status and decision words, and numbers formatted the
way a report writes them (thousands separators, sensible decimals, 万/亿 on request). One place, so the
console, the web page, the reports and the IM cards say the same thing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

STATUS = {
    # runs
    "done": "已完成", "failed": "失败", "waiting": "待审核", "running": "运行中", "cancelled": "已取消",
    "interrupted": "已中断", "queued": "排队中", "moved": "已由其他进程接手",
    # steps
    "skipped": "已跳过", "approved": "已通过", "rejected": "已驳回",
    # decisions
    "approve": "通过", "reject": "驳回",
}


def status(word: Any) -> str:
    """A status or decision word in Chinese; anything unknown as it is."""
    return STATUS.get(str(word), str(word)) if word is not None else "—"


def number(value: Any, decimals: int = 2, suffix: str = "") -> str:
    """9000.0 → '9,000'; 0.12345 → '0.12'; None → '—'; booleans 是/否: numbers as a report shows them. The
    suffix (e.g. '%') follows a number only, never the dash; '万' or '亿' also scales: 1234567, 1, '万' →
    '123.5万'. The page's and the templates' `number` filter both come here."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "无穷" if math.isinf(value) else "无"
    rounded = round(float(value / {"万": 1e4, "亿": 1e8}.get(suffix, 1)), decimals)
    text = f"{rounded:,.0f}" if rounded == int(rounded) else f"{rounded:,.{decimals}f}".rstrip("0")
    return text + suffix


def readable(value: Any, limit: int = 200) -> str:
    """A value as one line a person reads (outputs on the console): numbers formatted, yes/no, "—" for nothing,
    lists joined with 、 and objects as 键：值 — not JSON with its 9000.0, null and true. Built piece by piece
    and stopped at the limit: a 200,000-row output costs its first pieces, not its whole text."""
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    shown = "".join(pieces)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _pieces(v: Any) -> Iterator[str]:
    if v is None:
        yield "—"
    elif isinstance(v, bool | int | float):
        yield number(v)
    elif isinstance(v, dict):
        yield "{"
        for i, (k, x) in enumerate(v.items()):
            yield f"{'，' if i else ''}{k}："
            yield from _pieces(x)
        yield "}"
    elif isinstance(v, list | tuple):
        separator = "；" if any(isinstance(x, dict) for x in v) else "、"
        yield "["
        for i, x in enumerate(v):
            if i:
                yield separator
            yield from _pieces(x)
        yield "]"
    else:
        yield str(v)
