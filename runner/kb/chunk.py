"""A knowledge base's documents cut into passages a search returns whole: a markdown or html page at its headings
(each passage keeps its heading path, `退换货政策 › 七天无理由`), a long section at paragraph ends, a FAQ sheet one
row per passage (question and answer together, with the row's number). Pure: text and rows in, chunks out; the
files are read by runner/kb/read.py."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 600  # a passage longer than this is cut at paragraph (then sentence) ends: what a reply can cite
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s")
QUESTION_COLUMNS = ("问题", "question", "q", "标题", "title", "问", "常见问题", "用户问题")
ANSWER_COLUMNS = ("答案", "answer", "a", "回复", "回答", "答", "内容", "content", "话术", "标准答案")


@dataclass(frozen=True)
class Chunk:
    text: str
    file: str  # relative to the knowledge base's folder
    heading: str = ""  # the heading path, ' › '-joined; for a sheet row, its question
    row: int | None = None  # the sheet row (a FAQ sheet)

    def source(self) -> str:
        """Where it came from, as a citation reads: `faq.md › 退货 › 七天无理由`, `FAQ.xlsx › 第 12 行`."""
        parts = [self.file, *([self.heading] if self.heading else [])]
        return " › ".join(parts)


def markdown_chunks(lines: Iterable[str], file: str) -> Iterator[Chunk]:
    """Sections under headings (fenced code kept with its section, a `#` inside a fence is not a heading);
    front matter (`---` … `---` at the top) left out."""
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fenced = False
    front = None  # None: not yet known; True: inside front matter
    for number, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        if number == 0 and line.strip() == "---":
            front = True
            continue
        if front:
            front = line.strip() != "---"
            continue
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            body.append(line)
            if len(body) > 5000 and not fenced:  # a huge page without headings: passed on in parts, bounded memory
                yield from section_chunks("\n".join(body), file, _joined(path))
                body = []
            continue
        yield from section_chunks("\n".join(body), file, _joined(path))
        body = []
        level = len(heading.group(1))
        path = [(lv, title) for lv, title in path if lv < level] + [(level, _plain(heading.group(2)))]
    yield from section_chunks("\n".join(body), file, _joined(path))


def text_chunks(lines: Iterable[str], file: str) -> Iterator[Chunk]:
    """A plain text file: paragraphs gathered up to MAX_CHARS, a line in 【】 or ending in ：taken as a heading."""
    body: list[str] = []
    heading = ""
    for raw in lines:
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if stripped and len(stripped) <= 40 and (re.fullmatch(r"【.+】", stripped) or stripped.endswith(("：", ":"))):
            yield from section_chunks("\n".join(body), file, heading)
            body, heading = [], stripped.strip("【】：:")
            continue
        body.append(line)
        if len(body) > 5000:  # a huge file without headings: passed on in parts, bounded memory
            yield from section_chunks("\n".join(body), file, heading)
            body = []
    yield from section_chunks("\n".join(body), file, heading)


def section_chunks(text: str, file: str, heading: str) -> Iterator[Chunk]:
    """One section's passages: whole when short, else cut at blank lines (then sentence ends) into pieces of at
    most MAX_CHARS, each keeping the section's heading."""
    text = text.strip()
    if not text:
        return
    if len(text) <= MAX_CHARS:
        yield Chunk(text, file, heading)
        return
    piece = ""
    for paragraph in _pieces(text):
        if piece and len(piece) + len(paragraph) + 2 > MAX_CHARS:
            yield Chunk(piece, file, heading)
            piece = ""
        piece = f"{piece}\n\n{paragraph}" if piece else paragraph
    if piece:
        yield Chunk(piece, file, heading)


def faq_chunks(rows: list[dict[str, Any]], lines: Iterable[int], file: str) -> Iterator[Chunk]:
    """A sheet of questions and answers: one passage per row (`问：… 答：…`). Without a question column and an
    answer column, each row's cells joined, headed by its first cell."""
    names = list(rows[0]) if rows else []
    question = _column(names, QUESTION_COLUMNS)
    answer = _column(names, ANSWER_COLUMNS)
    for row, line in zip(rows, lines, strict=False):
        if question is not None and answer is not None:
            asked, told = _cell(row.get(question)), _cell(row.get(answer))
            if not asked and not told:
                continue
            extra = [f"{k}：{_cell(v)}" for k, v in row.items() if k not in (question, answer) and _cell(v)]
            text = "\n".join([f"问：{asked}", f"答：{told}", *extra])
            yield Chunk(text, file, asked[:80], line)
            continue
        cells = [f"{k}：{_cell(v)}" for k, v in row.items() if _cell(v)]
        if cells:
            yield Chunk("\n".join(cells), file, _cell(next(iter(row.values()), ""))[:80], line)


def _column(names: list[str], wanted: tuple[str, ...]) -> str | None:
    folded = {str(name).strip().lower(): name for name in names}
    return next((folded[w] for w in wanted if w in folded), None)


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _pieces(text: str) -> Iterator[str]:
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if len(paragraph) <= MAX_CHARS:
            if paragraph:
                yield paragraph
            continue
        sentence = ""
        for part in _SENTENCE_END.split(paragraph):
            if sentence and len(sentence) + len(part) > MAX_CHARS:
                yield sentence.strip()
                sentence = ""
            sentence += part
            while len(sentence) > MAX_CHARS:  # one "sentence" longer than a passage: cut where it must be
                yield sentence[:MAX_CHARS]
                sentence = sentence[MAX_CHARS:]
        if sentence.strip():
            yield sentence.strip()


def _plain(title: str) -> str:
    """A heading's words without markdown marks: `**x**`, `` `x` ``, links."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
    title = re.sub(r"\\(.)", r"\1", title)  # `\<script setup\>`: markdown's escapes
    return re.sub(r"[*_`]", "", title).strip()


def _joined(path: list[tuple[int, str]]) -> str:
    return " › ".join(title for _level, title in path)
