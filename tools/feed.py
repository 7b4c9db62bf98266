"""feed.read: RSS and Atom feeds in any declared encoding (gb2312/gbk included), normalised items."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool
from tools.http import fetch

_TAGS = re.compile(r"<[^>]+>")


class FeedReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="http(s) URL of the feed")
    path: str | None = Field(None, description="or a local feed file")
    limit: int | None = Field(None, ge=1, description="keep the newest N items")


class FeedItem(BaseModel):
    id: str
    title: str
    link: str | None
    published: str | None = Field(description="ISO 8601, UTC (a feed date without a zone is read in the project "
                                              "timezone)")
    author: str | None
    summary: str
    source: str


class FeedReadOutput(BaseModel):
    title: str
    kind: str
    items: list[FeedItem]
    count: int


@tool("feed.read")
async def feed_read(args: FeedReadInput, ctx: ToolContext) -> FeedReadOutput:
    """Read an RSS or Atom feed into normalised items."""
    if (args.url is None) == (args.path is None):
        raise ValueError(_("give exactly one of url or path"))
    if args.url is not None:
        content = (await fetch(args.url, ctx)).content
        source = args.url
    else:
        path = ctx.input_path(str(args.path))
        if not path.exists():
            raise ToolArgumentError("path", _("file '{path}' not found").format(path=args.path))
        content, source = path.read_bytes(), str(args.path)
    return parse_feed(content, source, args.limit, getattr(ctx.settings, "timezone", None) or "Asia/Shanghai")


def parse_feed(content: bytes, source: str, limit: int | None = None,
               timezone: str = "Asia/Shanghai") -> FeedReadOutput:
    import feedparser

    parsed = feedparser.parse(_declared_gb_as_gb18030(content))
    if parsed.bozo and not parsed.entries:
        raise ValueError(_("'{source}' is not a readable RSS/Atom feed ({reason})").format(
                             source=source, reason=parsed.get("bozo_exception")))
    items = [_item(entry, source, timezone) for entry in parsed.entries]
    items.sort(key=lambda i: i.published or "", reverse=True)
    if limit:
        items = items[:limit]
    kind = parsed.get("version") or "unknown"
    return FeedReadOutput(title=parsed.feed.get("title", ""), kind=kind, items=items, count=len(items))


def _declared_gb_as_gb18030(content: bytes) -> bytes:
    """feedparser decodes with the declared codec; gb2312 is too narrow for real Chinese feeds."""
    head = content[:200]
    match = re.search(rb"""encoding=["'](gb2312|gbk)["']""", head, re.IGNORECASE)
    if not match:
        return content
    return content.replace(match.group(0), match.group(0).replace(match.group(1), b"gb18030"), 1)


_HAS_ZONE = re.compile(r"(?:Z|[+-]\d\d:?\d\d|\b[A-Za-z]{1,5})\s*$")


def published_at(entry: Any, timezone: str) -> str | None:
    """The item's time as ISO 8601 UTC. feedparser reads a date without a zone as UTC; a Chinese feed's
    `2026-08-17 09:00` means 09:00 in Beijing, so a zoneless date is read in the project's timezone."""
    for name in ("published", "updated"):
        raw = str(entry.get(name) or "").strip()
        stamp = entry.get(f"{name}_parsed")
        if stamp:
            moment = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
        elif raw and (naive := _naive(raw)) is not None:  # feedparser gives up on some zoneless dates
            moment = naive.replace(tzinfo=UTC)
        else:
            continue
        if raw and not _HAS_ZONE.search(raw):
            moment = moment.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
        return moment.isoformat()
    return None


def _naive(raw: str) -> datetime | None:
    from email.utils import parsedate_to_datetime

    for parse in (parsedate_to_datetime, datetime.fromisoformat):
        try:
            return parse(raw).replace(tzinfo=None)
        except (TypeError, ValueError, IndexError):
            continue
    return None


def _item(entry: Any, source: str, timezone: str) -> FeedItem:
    published = published_at(entry, timezone)
    summary = entry.get("summary") or ""
    if not summary and entry.get("content"):
        summary = entry["content"][0].get("value", "")
    text = " ".join(_TAGS.sub(" ", summary).split())
    link = entry.get("link")
    return FeedItem(id=entry.get("id") or link or entry.get("title", ""), title=entry.get("title", "").strip(),
                    link=link, published=published, author=entry.get("author"), summary=text[:2000],
                    source=source)
