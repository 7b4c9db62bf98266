"""file.write: markdown, json, text and HTML artifacts in the run folder."""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner import atomic
from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool

_CSS = ("body{font-family:'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;max-width:960px;"
        "margin:2em auto;padding:0 1em;line-height:1.7;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#4472c4;color:#fff}"
        "img{max-width:100%}blockquote{border-left:4px solid #ddd;margin:0;padding-left:1em;color:#555}")


class FileWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="file name in the run folder, e.g. report.md or report.html")
    content: Any = Field(description="text, or any value (written as JSON); markdown for an .html file")
    format: Literal["auto", "text", "markdown", "json", "html"] = Field(
        "auto", description="auto: by suffix (.json → JSON, .html → markdown rendered to one self-contained "
                            "HTML page with its images inlined)")
    title: str = Field("", description="page title of an HTML file")
    html: bool = Field(False, description="markdown: also write it as a self-contained .html beside it")


class FileWriteOutput(BaseModel):
    path: str
    bytes: int
    html_path: str | None = None


def markdown_page(markdown: str, title: str, folder: Path) -> str:
    """Markdown as one HTML file that opens anywhere: images from the run folder become data URIs."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def inline(match: re.Match[str]) -> str:
        source = html.unescape(match.group(1))
        image = (folder / source).resolve()
        if "/" in source or not image.is_file() or image.parent != folder.resolve():
            return match.group(0)  # only files of this run folder are inlined
        kind = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        return f'src="data:{kind};base64,{base64.b64encode(image.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"]+)"', inline, body)
    return (f'<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}</body></html>\n")


@tool("file.write")
async def file_write(args: FileWriteInput, ctx: ToolContext) -> FileWriteOutput:
    """Write a markdown, json, text or self-contained HTML artifact."""
    target = ctx.artifact_path(args.path)
    suffix = target.suffix.lower()
    if args.format == "html" or (args.format == "auto" and suffix in (".html", ".htm")):
        text = markdown_page(str(args.content), args.title or target.stem, target.parent)
    elif args.format == "json" or (args.format == "auto" and (suffix == ".json" or not isinstance(args.content, str))):
        text = json.dumps(args.content, ensure_ascii=False, indent=2, default=str) + "\n"
    else:
        text = str(args.content)
    data = text.encode("utf-8")
    atomic.write_bytes(target, data)
    companion = None
    if args.html and suffix not in (".html", ".htm"):
        companion = target.with_suffix(".html")
        atomic.write_text(companion, markdown_page(text, args.title or target.stem, target.parent))
    return FileWriteOutput(path=str(target), bytes=len(data), html_path=str(companion) if companion else None)


class FileReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="a text, markdown or json file (UTF-8 or GBK)")
    max_chars: int = Field(20_000, ge=1, description="keep at most this many characters of text")


class FileReadOutput(BaseModel):
    path: str
    text: str
    chars: int
    truncated: bool
    data: Any = Field(None, description="the parsed value of a .json file")


@tool("file.read", journal=False)
async def file_read(args: FileReadInput, ctx: ToolContext) -> FileReadOutput:
    """Read a text, markdown or json file (an earlier run's report, a brief, notes)."""
    from runner.tables.files import ENCODINGS

    path = ctx.input_path(args.path)
    if not path.is_file():
        raise ToolArgumentError("path", _("file '{path}' not found (looked in {parent})").format(
                                            path=args.path, parent=path.parent))
    raw = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ToolArgumentError("path", _("'{path}' is neither UTF-8 nor GBK text").format(path=args.path))
    data = None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolArgumentError("path", _("'{path}' line {lineno} column {colno}: {msg}").format(
                path=args.path, lineno=exc.lineno, colno=exc.colno, msg=exc.msg)) from None
    return FileReadOutput(path=str(path), text=text[:args.max_chars], chars=len(text),
                          truncated=len(text) > args.max_chars, data=data)
