"""web.fetch: a page over HTTP with honest charset detection, the article's main text and metadata,
and every link as an absolute URL (for list pages)."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool
from tools.http import check_url, decode, fetch


class Link(BaseModel):
    url: str
    text: str


class WebFetchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL")
    extract: Literal["article", "links", "both", "html", "json"] = Field(
        "both", description="article: main text + metadata; links: absolute links; html: raw page; "
                            "json: the body parsed as JSON (an API or a hot list)")
    max_links: int = Field(500, ge=0)
    timeout: float | None = Field(None, gt=0, description="seconds (default: [web] timeout)")


class WebFetchOutput(BaseModel):
    url: str
    status: int
    encoding: str
    title: str | None = None
    author: str | None = None
    published: str | None = None
    text: str | None = None
    links: list[Link] = Field(default_factory=list)
    html: str | None = None
    data: Any = None


@tool("web.fetch")
async def web_fetch(args: WebFetchInput, ctx: ToolContext) -> WebFetchOutput:
    """Fetch a page: main text, title, author, date, and absolute links."""
    page = await fetch(args.url, ctx, timeout=args.timeout)
    html, encoding = decode(page.content, {k.lower(): v for k, v in page.headers.items()})
    out = WebFetchOutput(url=page.url, status=page.status, encoding=encoding)
    if args.extract == "html":
        out.html = html
        return out
    if args.extract == "json":
        try:
            out.data = json.loads(html)
        except json.JSONDecodeError as exc:
            raise ToolArgumentError("url", _("'{url}' did not answer JSON (line {lineno} column {colno}: {msg}); "
                                             "use extract: html to see what it answers").format(
                                               url=args.url, lineno=exc.lineno, colno=exc.colno, msg=exc.msg)) from None
        return out
    meta = page_metadata(html)
    if args.extract in ("article", "both"):
        article = extract_article(html, page.url)
        out.text = article.get("text")
        out.title = meta.get("title") or article.get("title")
        out.author = meta.get("author") or _plausible_author(article.get("author"))
        out.published = meta.get("published") or article.get("date")
    else:
        out.title = meta.get("title")
    if args.extract in ("links", "both"):
        out.links = extract_links(html, page.url, ctx, args.max_links)
    return out


def extract_article(html: str, url: str) -> dict[str, Any]:
    import trafilatura

    document = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                           include_tables=True)
    if document is None:
        return {}
    data: dict[str, Any] = document.as_dict() if hasattr(document, "as_dict") else dict(document)
    return data


def page_metadata(html: str) -> dict[str, str]:
    """Metadata the page states in <meta> tags, which beats heuristics when present."""
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(html)
    except (ValueError, TypeError):
        return {}
    found: dict[str, str] = {}
    names = {"og:title": "title", "author": "author", "article:author": "author",
             "publishdate": "published", "article:published_time": "published", "pubdate": "published",
             "og:release_date": "published"}
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").lower()
        value = (meta.get("content") or "").strip()
        if key in names and value and names[key] not in found:
            found[names[key]] = value
    return found


def _plausible_author(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text and text not in ("作者", "作者：", "admin", "责任编辑") else None


def extract_links(html: str, base: str, ctx: ToolContext, limit: int) -> list[Link]:
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(html)
    except (ValueError, TypeError):
        return []
    links: dict[str, Link] = {}
    for anchor in tree.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
            continue
        absolute = urldefrag(urljoin(base, href))[0]
        try:
            check_url(absolute, ctx)
        except ValueError:
            continue  # other schemes, or hosts outside the allowlist
        text = " ".join(anchor.text_content().split())
        if absolute not in links or (text and not links[absolute].text):
            links[absolute] = Link(url=absolute, text=text)
        if len(links) >= limit:
            break
    return list(links.values())
