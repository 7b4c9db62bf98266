"""trend.diff and runs.previous: what changed on a hot list or feed since the previous run.

The comparison is pure and deterministic (ranks in, statuses out); the LLM only reads its result."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool


def topic_key(title: str) -> str:
    """Same topic, same key: full-width folded, case, spaces and hashtag marks ignored."""
    text = unicodedata.normalize("NFKC", str(title)).lower()
    return re.sub(r"[\s#＃]+", "", text)


class DiffInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: list[dict[str, Any]] = Field(description="this run's items, best first (or with a rank field)")
    previous: list[dict[str, Any]] | None = Field(None, description="the previous run's items; none on a first run")
    key: str = Field("title", description="field that names the topic")
    rank: str | None = Field(None, description="rank field (default: position in the list, 1 = top)")
    min_change: int = Field(5, ge=1, description="rank places a topic must move to count as rising or falling")


STATUS_LABELS = {"new": "新上榜", "rising": "上升", "falling": "下降", "steady": "持平"}


class TrendItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str = Field(description="new | rising | falling | steady (for `when:` and templates)")
    status_label: str = Field("", description="the status as a report says it: 新上榜 / 上升 / 下降 / 持平")
    rank: int
    previous_rank: int | None
    change: int | None = Field(description="places gained (positive) or lost since the previous run")


class DiffOutput(BaseModel):
    first_run: bool
    items: list[TrendItem]
    new: list[TrendItem]
    rising: list[TrendItem]
    falling: list[TrendItem]
    gone: list[dict[str, Any]]
    counts: dict[str, int]
    rule: str


Ranked = dict[str, tuple[int, dict[str, Any]]]


def _ranked(rows: list[dict[str, Any]], key: str, rank: str | None, argument: str) -> Ranked:
    ranked: Ranked = {}
    for position, row in enumerate(rows, start=1):
        if key not in row:
            raise ToolArgumentError(argument, _("item {position} has no '{key}' field (fields: {joined})").format(
                                                  position=position, key=key, joined=', '.join(row)))
        value = int(row[rank]) if rank and row.get(rank) is not None else position
        ranked.setdefault(topic_key(row[key]), (value, row))  # a repeated topic keeps its best rank
    return ranked


@tool("trend.diff")
async def trend_diff(args: DiffInput, ctx: ToolContext) -> DiffOutput:
    """Compare this run's list with the previous one: new, rising, falling, steady, gone."""
    now = _ranked(args.current, args.key, args.rank, "current")
    before = _ranked(args.previous or [], args.key, args.rank, "previous")
    items: list[TrendItem] = []
    for topic, (rank, row) in sorted(now.items(), key=lambda pair: pair[1][0]):
        old = before.get(topic)
        change = old[0] - rank if old else None
        status = ("new" if old is None else "rising" if change is not None and change >= args.min_change
                  else "falling" if change is not None and change <= -args.min_change else "steady")
        items.append(TrendItem(**{**row, "status": status, "status_label": STATUS_LABELS[status], "rank": rank,
                                  "previous_rank": old[0] if old else None, "change": change}))
    gone = [{**row, "previous_rank": rank} for topic, (rank, row) in sorted(before.items(), key=lambda p: p[1][0])
            if topic not in now]
    first = not args.previous
    if first:  # nothing to compare with: every topic is simply present, not "new"
        items = [item.model_copy(update={"status": "steady", "status_label": STATUS_LABELS["steady"]})
                 for item in items]
    groups = {s: [i for i in items if i.status == s] for s in ("new", "rising", "falling", "steady")}
    rule = _("same topic = '{key}' equal after NFKC normalisation, ignoring case, spaces and #; rising/falling = "
             "rank changed by at least {min_change}; new = not there last time; gone = only there last time").format(
        key=args.key, min_change=args.min_change)
    return DiffOutput(first_run=first, items=items, new=groups["new"], rising=groups["rising"],
                      falling=groups["falling"], gone=gone,
                      counts={**{s: len(v) for s, v in groups.items()}, "gone": len(gone)}, rule=rule)


class CollectInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[dict[str, Any]] = Field(description="one entry per source: `name` plus its list under "
                                          "`data` (a hot list of {title, url}), `items` (feed.read) or "
                                          "`links` (web.fetch of a list page)")
    per_source: int = Field(50, ge=1, description="keep the first N entries of each source")
    min_title: int = Field(4, ge=1, description="drop link texts shorter than this (navigation, 'more')")


class TopicItem(BaseModel):
    title: str
    url: str | None
    source: str
    rank: int = Field(description="position in its source, 1 = top")
    sources: list[str] = Field(description="every source that carried this topic")
    published: str | None = None
    summary: str = ""


class CollectOutput(BaseModel):
    items: list[TopicItem] = Field(description="ordered by rank, then source order; one per topic")
    count: int
    per_source: dict[str, int]
    merged: int = Field(description="entries dropped because another source carried the same topic")


TITLE_FIELDS = ("title", "text", "word", "name", "query", "keyword", "note")


def _first_list(value: Any, depth: int = 0) -> list[dict[str, Any]] | None:
    """The first list of objects inside an API's JSON (e.g. Weibo's data.realtime), depth first."""
    if isinstance(value, list) and any(isinstance(e, dict) for e in value):
        return [e for e in value if isinstance(e, dict)]
    if isinstance(value, dict) and depth < 4:
        for inner in value.values():
            found = _first_list(inner, depth + 1)
            if found:
                return found
    return None


def _entries(source: dict[str, Any], index: int) -> list[dict[str, Any]]:
    for field in ("data", "items", "links"):
        found = _first_list(source.get(field))
        if found:
            return found
    if not any(source.get(f) is not None for f in ("data", "items", "links")):
        raise ToolArgumentError("sources", _("source {number} ('{value}') has no data, items or links list; pass a "
                                             "web.fetch (extract: json or links) or feed.read result").format(
                                               number=index + 1, value=source.get('name', '?')))
    return []


def _source_name(source: dict[str, Any], index: int) -> str:
    """A given name, a feed's own title, or the host and path of the URL it came from."""
    if source.get("name") or (source.get("title") and "items" in source):
        return str(source.get("name") or source.get("title"))
    parts = urlsplit(str(source.get("url") or ""))
    return f"{parts.hostname}{parts.path}" if parts.hostname else f"source{index + 1}"


@tool("trend.collect")
async def trend_collect(args: CollectInput, ctx: ToolContext) -> CollectOutput:
    """Normalise hot lists, feeds and list pages into one list of topics, merged across sources."""
    by_key: dict[str, TopicItem] = {}
    per_source: dict[str, int] = {}
    merged = 0
    for index, source in enumerate(args.sources):
        name = _source_name(source, index)
        kept = 0
        for entry in _entries(source, index):
            raw = next((entry[f] for f in TITLE_FIELDS if isinstance(entry.get(f), str) and entry[f].strip()), "")
            title = " ".join(raw.split())
            if len(title) < args.min_title:
                continue
            kept += 1
            if kept > args.per_source:
                break
            key = topic_key(title)
            if key in by_key:
                merged += 1
                if name not in by_key[key].sources:
                    by_key[key].sources.append(name)
                continue
            by_key[key] = TopicItem(title=title, url=entry.get("url") or entry.get("link"), source=name, rank=kept,
                                    sources=[name], published=entry.get("published"),
                                    summary=str(entry.get("summary") or "")[:300])
        per_source[name] = min(kept, args.per_source)
    items = sorted(by_key.values(), key=lambda item: item.rank)  # stable: source order breaks ties
    return CollectOutput(items=items, count=len(items), per_source=per_source, merged=merged)


class PreviousInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: str | None = Field(None, description="playbook name (default: the running one)")
    match_inputs: list[str] = Field(default_factory=list, description="only runs whose inputs had the same "
                                    "values for these names (e.g. [keywords])")
    inputs: dict[str, Any] = Field(default_factory=dict, description="this run's inputs, for match_inputs")


class PreviousOutput(BaseModel):
    found: bool
    run_id: str | None = None
    started_at: float | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)


@tool("runs.previous")
async def runs_previous(args: PreviousInput, ctx: ToolContext) -> PreviousOutput:
    """The outputs of the latest finished earlier run of a playbook (for run-over-run comparisons)."""
    missing = [name for name in args.match_inputs if name not in args.inputs]
    if missing:
        raise ToolArgumentError("match_inputs", _("pass this run's value of {joined} under inputs:").format(
                                                    joined=', '.join(missing)))
    if ctx.store is None:  # called outside a run (runner.testing.call_tool): there are no earlier runs
        return PreviousOutput(found=False)
    runs = ctx.store.finished_runs(args.playbook or ctx.playbook, exclude=ctx.run_id.split(".")[0])
    for run in runs:
        if all((run["inputs"] or {}).get(n) == args.inputs[n] for n in args.match_inputs):
            return PreviousOutput(found=True, run_id=run["id"], started_at=run["started_at"],
                                  outputs=run["outputs"] or {})
    return PreviousOutput(found=False)
