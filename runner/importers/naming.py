"""Readable, unique step ids from node titles: Chinese in pinyin (`生成标题` → `sheng_cheng_biao_ti`), other
text lower-cased, anything else an underscore. Pure."""

from __future__ import annotations

import re

MAX_ID = 40
_NOT_ID = re.compile(r"[^a-z0-9]+")


def slug(title: str, fallback: str) -> str:
    """A step id made from `title` (pinyin for Chinese), or `fallback` when nothing readable is left."""
    from pypinyin import lazy_pinyin  # imported here: only `playbook import` needs it

    words = lazy_pinyin(title or "")
    text = _NOT_ID.sub("_", "_".join(words).lower()).strip("_")
    text = re.sub(r"_+", "_", text)[:MAX_ID].strip("_")
    if not text:
        text = fallback
    return text if text[0].isalpha() else f"n_{text}"


class Names:
    """Hands out ids no other step (and no reserved word) has."""

    def __init__(self, reserved: set[str] | None = None) -> None:
        self.taken = set(reserved or {"end", "item", "inputs", "steps", "run", "env", "secrets", "approval"})

    def claim(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.taken:
            name, n = f"{wanted}_{n}", n + 1
        self.taken.add(name)
        return name
