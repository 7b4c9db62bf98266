"""Reading a knowledge base's folder: which files it holds, each file's content hash (re-indexing reads only the
changed ones) and its passages. md, txt, html, docx, pdf (its text layer) and FAQ sheets (csv, xlsx); a file
that cannot be read is said with the reason and left out, the rest still indexed. Text files are read line by
line and docx by streaming its XML, so a 100 MB file does not sit in memory whole."""

from __future__ import annotations

import codecs
import hashlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from runner.i18n import _
from runner.kb.chunk import Chunk, faq_chunks, markdown_chunks, text_chunks

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".docx", ".pdf", ".csv", ".xlsx")
MAX_FILE = 512 * 1024 * 1024  # bytes: past this a file is listed as too big, not read
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class Unreadable(Exception):
    """A file left out of the index; the message says why, for the list `kb add` prints."""


def documents(folder: Path) -> list[Path]:
    """The files of `folder` (and its subfolders) a knowledge base reads, in a stable order; hidden ones (`.git`,
    `~$` lock files of an open Excel) left out."""
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
             and not any(part.startswith((".", "~$")) for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def chunks_of(path: Path, name: str) -> Iterator[Chunk]:
    """The passages of one file (`name`: its path in the knowledge base). Raises Unreadable."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from None
    if size > MAX_FILE:
        raise Unreadable(_("{size} MB is more than a knowledge base reads from one file ({limit} MB); split "
                           "it").format(size=size >> 20, limit=MAX_FILE >> 20))
    suffix = path.suffix.lower()
    try:
        if suffix in (".md", ".markdown"):
            yield from markdown_chunks(_lines(path), name)
        elif suffix == ".txt":
            yield from text_chunks(_lines(path), name)
        elif suffix in (".html", ".htm"):
            yield from markdown_chunks(_html_lines(path), name)
        elif suffix == ".docx":
            yield from markdown_chunks(_docx_lines(path), name)
        elif suffix == ".pdf":
            yield from _pdf_chunks(path, name)
        else:
            yield from _sheet_chunks(path, name)
    except Unreadable:
        raise
    # a damaged or mislabelled file; SyntaxError: lxml's, for a Word file cut short (found mid-way, after passages)
    except (OSError, ValueError, KeyError, SyntaxError, zipfile.BadZipFile) as exc:
        raise Unreadable(_("cannot be read as {kind}: {reason}").format(kind=suffix.lstrip("."),
                                                                       reason=exc)) from None


def _lines(path: Path) -> Iterator[str]:
    """A text file's lines, UTF-8 or (as Windows in China saves) GB18030, the encoding found by a first pass over
    the bytes (so nothing is yielded twice); bytes that are neither are refused."""
    encoding = _encoding(path)
    with path.open(encoding=encoding, newline="") as handle:
        yield from handle


def _encoding(path: Path) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise Unreadable(_("is neither UTF-8 nor GBK text"))


def _html_lines(path: Path) -> Iterator[str]:
    """A page's headings as markdown headings and its paragraphs, list items and table cells as lines; scripts,
    styles and navigation left out."""
    import lxml.html
    from lxml.etree import ParserError

    raw = path.read_bytes()
    declared = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", raw[:4096], re.IGNORECASE)
    text = None
    for encoding in ([declared.group(1).decode()] if declared else []) + ["utf-8", "gb18030"]:
        try:
            text = raw.decode(encoding)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        raise Unreadable(_("is neither UTF-8 nor GBK text"))
    try:
        root = lxml.html.fromstring(text)
    except ParserError:
        raise Unreadable(_("is an empty page")) from None
    for bad in root.xpath("//script|//style|//nav|//footer|//noscript"):
        bad.getparent().remove(bad)
    for element in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "th", "pre", "dt", "dd"):
        text = " ".join(element.text_content().split())
        if not text:
            continue
        tag = str(element.tag)
        yield ("#" * int(tag[1]) + " " + text) if tag in ("h1", "h2", "h3", "h4", "h5", "h6") else text
        yield ""


def _docx_lines(path: Path) -> Iterator[str]:
    """A Word document's paragraphs, streamed from its XML; a paragraph styled as a heading (Heading 2, 标题 2)
    becomes a markdown heading of that level."""
    from lxml import etree

    with zipfile.ZipFile(path) as archive, archive.open("word/document.xml") as xml:
        for _event, paragraph in etree.iterparse(xml, tag=f"{_W}p"):
            style = paragraph.find(f"{_W}pPr/{_W}pStyle")
            name = (style.get(f"{_W}val") or "") if style is not None else ""
            text = "".join(t.text or "" for t in paragraph.iter(f"{_W}t")).strip()
            paragraph.clear()
            if not text:
                continue
            level = next((int(c) for c in name if c.isdigit()), 0) if name.lower().startswith(
                ("heading", "标题", "title")) else 0
            yield ("#" * min(max(level, 1), 6) + " " + text) if level or name.lower() == "title" else text
            yield ""


def _pdf_chunks(path: Path, name: str) -> Iterator[Chunk]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = len(reader.pages)
    except (PdfReadError, OSError) as exc:
        raise Unreadable(_("is not a readable PDF: {reason}").format(reason=exc)) from None
    found = False
    for number in range(pages):
        text = reader.pages[number].extract_text() or ""
        if text.strip():
            found = True
            page = _("page {number}").format(number=number + 1)
            yield from (Chunk(c.text, name, page) for c in text_chunks(text.splitlines(), name))
    if not found:
        raise Unreadable(_("has no text layer (a scan?); run it through OCR first"))


def _sheet_chunks(path: Path, name: str) -> Iterator[Chunk]:
    from runner.registry import ToolArgumentError
    from runner.tables.files import Shape, read_table

    try:
        table = read_table(path, name, Shape())
    except ToolArgumentError as exc:
        raise Unreadable(str(exc)) from None
    yield from faq_chunks(table.rows, table.lines, name)
