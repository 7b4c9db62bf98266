"""What a person reads, in the ops team's language: status and decision words, and numbers formatted the
way a report writes them (thousands separators, sensible decimals, 万/亿 on request). One place, so the
console, the web page, the reports and the IM cards say the same thing."""

from __future__ import annotations

import math
from typing import Any

STATUS = {
    # runs
    "done": "已完成", "failed": "失败", "waiting": "待审核", "running": "运行中", "cancelled": "已取消",
    "interrupted": "已中断",
    # steps
    "skipped": "已跳过", "approved": "已通过", "rejected": "已驳回",
    # decisions
    "approve": "通过", "reject": "驳回",
}


def status(word: Any) -> str:
    """A status or decision word in Chinese; anything unknown as it is."""
    return STATUS.get(str(word), str(word)) if word is not None else "—"


def number(value: Any, *, decimals: int = 2, unit: str = "") -> str:
    """9000.0 → '9,000'; 0.123456 → '0.12'; 1234567 → '1,234,567'; with unit='万': 123456 → '12.35 万'.
    Booleans are 是/否; NaN and infinities say so; anything else is returned as text."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "无穷" if math.isinf(value) else "无"
    scale = {"万": 1e4, "亿": 1e8}.get(unit, 1.0)
    scaled = value / scale
    if isinstance(scaled, float) and scaled.is_integer() and abs(scaled) < 1e15:
        text = f"{int(scaled):,}"
    elif isinstance(scaled, float):
        text = f"{scaled:,.{decimals}f}".rstrip("0").rstrip(".")
    else:
        text = f"{scaled:,}"
    return f"{text} {unit}" if unit else text


def readable(value: Any, limit: int = 200) -> str:
    """A value as one line a person reads (outputs on the console): numbers formatted, yes/no, "—" for nothing,
    lists joined with 、 and objects as 键：值 — not JSON with its 9000.0, null and true."""

    def text(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, bool | int | float):
            return number(v)
        if isinstance(v, dict):
            return "{" + "，".join(f"{k}：{text(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list | tuple):
            return "[" + "；".join(text(x) for x in v) + "]" if any(isinstance(x, dict) for x in v) else \
                "[" + "、".join(text(x) for x in v) + "]"
        return str(v)

    shown = text(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"
