"""check.*: deterministic checks of LLM-written text — numbers against the computed table, copy
against the absolute-claim words China's advertising law forbids (广告法 第九条)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import N_, _
from runner.registry import ToolArgumentError, ToolContext, tool

_NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s*(%|％|万|亿)?")
_UNITS = {"万": 1e4, "亿": 1e8}
NUMBER_RULE = N_("a number in the text counts as coming from the computed results when some number there, rounded "
                 "to the text's decimals, equals it (万 = ×10,000, 亿 = ×100,000,000; a percentage may also be a "
                 "ratio × 100; signs are ignored); numbers inside the results' dates and labels count too")


def fact_numbers(value: Any) -> list[float]:
    """Every number in a JSON value, including the digits inside its strings (dates, labels)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [abs(float(value))]
    if isinstance(value, str):
        return [abs(float(m.group(1).replace(",", "") + (f".{m.group(2)}" if m.group(2) else "")))
                for m in _NUMBER.finditer(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in fact_numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in fact_numbers(v)]
    return []


def _matches(number: float, decimals: int, unit: str | None, facts: list[float]) -> bool:
    scale = _UNITS.get(unit or "", 1.0)
    candidates = (f / scale for f in facts)
    if unit in ("%", "％"):
        candidates = (c for f in facts for c in (f, f * 100))
    return any(round(c, decimals) == number for c in candidates)


class NumbersInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the LLM-written narrative")
    facts: Any = Field(description="the computed table (any JSON: rows, dicts, lists)")
    allow: list[str] = Field(default_factory=list, description="literal numbers that may appear anyway")
    fail: bool = Field(True, description="fail the step when the text has numbers not in the facts")


class NumberFound(BaseModel):
    text: str
    computed: bool


class NumbersOutput(BaseModel):
    ok: bool
    numbers: list[NumberFound]
    invented: list[str]
    rule: str


@tool("check.numbers")
async def check_numbers(args: NumbersInput, ctx: ToolContext) -> NumbersOutput:
    """Check that every number in a text appears in the computed facts."""
    facts = fact_numbers(args.facts)
    found: list[NumberFound] = []
    for match in _NUMBER.finditer(args.text):
        whole, decimals, unit = match.group(1), match.group(2) or "", match.group(3)
        number = float(whole.replace(",", "") + (f".{decimals}" if decimals else ""))
        literal = match.group(0).strip()
        ok = literal in args.allow or _matches(number, len(decimals), unit, facts)
        found.append(NumberFound(text=literal, computed=ok))
    invented = list(dict.fromkeys(n.text for n in found if not n.computed))
    if invented and args.fail:
        raise ToolArgumentError("text", _("numbers not in the computed table: {joined} (rule: {rule})").format(
                                            joined=', '.join(invented), rule=_(NUMBER_RULE)))
    return NumbersOutput(ok=not invented, numbers=found, invented=invented, rule=_(NUMBER_RULE))


# Our own grouping of the absolute terms that 广告法 第九条(三) and market-regulator guidance forbid in ads.
AD_LAW_WORDS: dict[str, list[str]] = {
    "最高级用语": ["最佳", "最好", "最优", "最强", "最大", "最高", "最低价", "最便宜", "最先进", "最受欢迎",
               "最具", "最火", "顶级", "极致", "极品", "至尊", "巅峰", "王牌", "终极"],
    "第一/唯一": ["第一", "首个", "首家", "首选", "唯一", "独一无二", "NO.1", "No.1", "TOP1", "Top1", "冠军",
              "领导品牌", "领先品牌"],
    "国家级/世界级": ["国家级", "世界级", "全球级", "国际级", "宇宙级"],
    "绝对化承诺": ["绝对", "100%", "百分百", "万能", "永久", "零风险", "无副作用", "史无前例", "前所未有",
              "全网最低", "保证", "稳赚"],
    "虚假紧迫": ["仅此一次", "再不抢就没了", "错过今天再等一年"],
}


class AdLawInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Any] = Field(description="copy to check: strings, or rows with `field`")
    field: str = Field("text", description="field holding the copy when texts are rows")
    extra_words: list[str] = Field(default_factory=list, description="more words your legal team bans")
    allow_words: list[str] = Field(default_factory=list, description="built-in words to accept anyway")


class AdLawHit(BaseModel):
    word: str
    category: str
    context: str


class AdLawResult(BaseModel):
    index: int
    text: str
    ok: bool
    hits: list[AdLawHit]


class AdLawOutput(BaseModel):
    ok: bool
    results: list[AdLawResult]
    flagged: int
    words_checked: int


@tool("check.ad_law")
async def check_ad_law(args: AdLawInput, ctx: ToolContext) -> AdLawOutput:
    """Flag absolute-claim words that China's advertising law bans (最佳, 第一, 国家级, 100% …)."""
    words = {w: c for c, group in AD_LAW_WORDS.items() for w in group if w not in args.allow_words}
    words.update({w: "团队禁用词" for w in args.extra_words})
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    lookup = {w.lower(): c for w, c in words.items()}
    results = []
    for index, entry in enumerate(args.texts):
        if isinstance(entry, dict):
            if args.field not in entry:
                raise ToolArgumentError("field", _("text {number} has no '{field}' field (fields: {joined})").format(
                                                     number=index + 1, field=args.field, joined=', '.join(entry)))
            entry = entry[args.field]
        text = str(entry or "")
        hits = [AdLawHit(word=m.group(0), category=lookup[m.group(0).lower()],
                         context=text[max(0, m.start() - 8):m.end() + 8]) for m in pattern.finditer(text)]
        results.append(AdLawResult(index=index, text=text, ok=not hits, hits=hits))
    flagged = sum(not r.ok for r in results)
    return AdLawOutput(ok=flagged == 0, results=results, flagged=flagged, words_checked=len(words))
