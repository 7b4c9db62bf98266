"""The shape of a table a user brings, judged from its cells: which separator splits its lines, which row is the
header (exports put a title line or two above it), whether it has a header at all, and where a row with more fields
than the header lost its quoting. Pure: records in, decisions out; the reader (`runner/tables/files.py`) does the I/O.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from runner.i18n import N_, _
from runner.wording import worded

LOOK = 200  # records a decision looks at: enough to see the columns, cheap on a million-row file
HEADER_WITHIN = 20  # a header further down than this is not found by itself (header_row: says where)
SEPARATORS = (",", "\t", ";", "|")
WHITESPACE = " "  # a run of spaces or tabs separates (CDNOW's .txt); no quoting
_DATE = re.compile(r"^\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$|^\d{4}-\d{2}$")


def split_line(line: str, separator: str) -> list[str]:
    if separator == WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=separator), [])


def choose_separator(lines: Sequence[str], preferred: str) -> str:
    """The separator under which the lines (the file's first ones) split into the same number of fields most often,
    two fields or more; `preferred` (the one the file's name implies) wins a tie, whitespace loses every tie."""
    lines = [line for line in lines if line.strip()][:LOOK]
    best, best_share = preferred, 0.0
    for separator in (preferred, *(s for s in SEPARATORS if s != preferred), WHITESPACE):
        counts = Counter(len(split_line(line, separator)) for line in lines)
        width, times = max(counts.items(), key=lambda pair: (pair[1], pair[0]), default=(0, 0))
        share = times / len(lines) if lines else 0.0
        if width >= 2 and share > best_share + 1e-9 and (separator != WHITESPACE or share >= 0.9):
            best, best_share = separator, share
    return best


def separator_name(separator: str) -> str:
    names = {",": N_("separator|comma"), "\t": N_("separator|tab"), ";": N_("separator|semicolon"),
             "|": N_("separator|vertical bar"), WHITESPACE: N_("separator|space")}
    return worded(names[separator])


def kind(value: Any) -> str:
    """'empty', 'number', 'date' or 'text'."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "empty"
    if isinstance(value, bool):
        return "text"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime | date):
        return "date"
    text = str(value).strip()
    if _DATE.match(text):
        return "date"
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return "text"
    return "number"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float(str(value).strip().replace(",", "").rstrip("%"))


def _filled(record: Sequence[Any]) -> int:
    return sum(kind(v) != "empty" for v in record)


@dataclass(frozen=True)
class Columns:
    """What the rows under a header hold, column by column: each column's usual kind, the span of its numbers,
    the average length of its texts."""
    kinds: list[str]
    spans: list[tuple[float, float] | None]
    lengths: list[float]

    @classmethod
    def of(cls, records: Sequence[Sequence[Any]], width: int) -> Columns:
        kinds, spans, lengths = [], [], []
        for j in range(width):
            cells = [r[j] for r in records if j < len(r) and kind(r[j]) != "empty"]
            counts = Counter(kind(c) for c in cells)
            usual = counts.most_common(1)[0][0] if counts else "empty"
            numbers = [_number(c) for c in cells if kind(c) == "number"]
            kinds.append(usual)
            spans.append((min(numbers), max(numbers)) if numbers else None)
            lengths.append(sum(len(str(c)) for c in cells) / len(cells) if cells else 0.0)
        return cls(kinds, spans, lengths)

    def fits(self, record: Sequence[Any]) -> bool:
        """Every filled cell of the record is of its column's usual kind."""
        return all(kind(v) in ("empty", self.kinds[j]) for j, v in enumerate(record))

    def looks_like_data(self, record: Sequence[Any]) -> bool:
        """A row that reads as one more row of data, not as the names of the columns: some cell is a number inside
        its number column's span, or a date in a date column, and no cell is a word over numbers or dates."""
        data_like = False
        for j, value in enumerate(record[: len(self.kinds)]):
            cell, usual = kind(value), self.kinds[j]
            if cell == "text" and usual in ("number", "date"):
                return False
            span = self.spans[j]
            if cell == "number" and usual == "number" and span is not None:
                low, high = span
                margin = high - low + 1  # the first of a sorted id column is below the rest: still inside
                data_like |= low - margin <= _number(value) <= high + margin
            data_like |= cell == "date" and usual == "date"
        return data_like


class NoHeader(Exception):
    """The first row reads as data: the columns have no names to go by."""

    def __init__(self, first: Sequence[Any]) -> None:
        self.first = list(first)
        super().__init__("no header")


def find_header(records: Sequence[Sequence[Any]]) -> int:
    """The index of the header among the first records: the first row whose cells look like names — filled, at
    least as many fields as the rows under it (a title line has fewer, or is padded with empty ones) — and under
    which the rows are consistent. Raises NoHeader when that row reads as data."""
    look = [list(r) for r in records[:LOOK]]
    filled = [r for r in look if _filled(r)]
    if not filled:
        return 0
    width = Counter(len(r) for r in filled).most_common(1)[0][0]
    for i, record in enumerate(look[:HEADER_WITHIN]):
        names = [str(v).strip() for v in record if kind(v) != "empty"]
        if len(record) < width or len(names) < width - (width >= 3):  # longer: rows that leave empty ends out
            continue
        below = [r for r in look[i + 1:] if _filled(r)]
        if below and sum(len(r) >= width for r in below) < 0.8 * len(below):  # longer: a text split by a comma
            continue
        if below and Columns.of(below, width).looks_like_data(record):
            raise NoHeader(record)
        return i
    return next(i for i, r in enumerate(look) if _filled(r))


def header_names(record: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The header's cells as column names — a blank one named `col3`, a repeated one `金额_2` — and what was
    renamed, for the notice."""
    names: list[str] = []
    renamed: list[str] = []
    seen: Counter[str] = Counter()
    for j, value in enumerate(record):
        name = str(value).strip() if kind(value) != "empty" else f"col{j + 1}"
        seen[name] += 1
        if seen[name] > 1:
            renamed.append(_("column {number} '{name}' repeats a name: renamed '{new}'").format(
                number=j + 1, name=name, new=f"{name}_{seen[name]}"))
            name = f"{name}_{seen[name]}"
        names.append(name)
    return names, renamed


def mend(record: list[str], columns: Columns, separator: str) -> tuple[list[str], int] | None:
    """A row with more fields than the header, put back together: the extra fields joined back into the one text
    column where an unquoted separator split a text (after that, every cell is of its column's kind; among several
    such columns, the one with the longest texts). Returns the row and that column's index, or None when no
    single column explains the row."""
    width = len(columns.kinds)
    extra = len(record) - width
    fitting = []
    for j in range(width):
        if columns.kinds[j] != "text":
            continue
        merged = [*record[:j], separator.join(record[j:j + extra + 1]), *record[j + extra + 1:]]
        if columns.fits(merged):
            fitting.append((columns.lengths[j], -j, merged))
    if not fitting:
        return None
    _length, minus_j, merged = max(fitting)
    return merged, -minus_j
