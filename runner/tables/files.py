"""Reading a table file a user brings — csv (any separator, UTF-8 or GBK, gzipped or not), xlsx, jsonl — into rows
keyed by its header, saying what was decided on the way (the header row under a title line, the separator, a text
put back together) and refusing clearly what cannot be read right. `sheet.read` and `metrics.load` read through it,
and its look at a file's start is the check made before a run.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zipfile
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

from runner.i18n import _
from runner.registry import NOT_KNOWN_YET, ToolArgumentError
from runner.tables.shape import (
    LOOK,
    WHITESPACE,
    Columns,
    NoHeader,
    choose_separator,
    find_header,
    header_names,
    mend,
    separator_name,
)

MAX_CELL = 16 * 1024 * 1024  # characters in one csv cell
MAX_UNPACKED = 1024 * 1024 * 1024  # bytes a gzipped table may unpack to: a bomb is refused, not swallowed
SNIFF_BYTES = 256 * 1024
ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK/GB2312, as Excel in China saves
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
SUFFIXES = (*TEXT_SUFFIXES, ".xlsx", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class Shape:
    """What the user said about a file's shape (every field optional: detected when not said)."""
    sheet: str | None = None
    encoding: str | None = None
    header_row: int | None = None  # the file line (sheet row) of the header; 0: there is none
    names: list[str] | None = None  # the columns' names, for a file without a header
    told_by_the_run: bool = False  # header_row or names come from a step: before the run, a first row of data is
                                   # not held against the file

    @classmethod
    def of(cls, args: dict[str, Any]) -> Shape:
        """From a tool's arguments as a pre-run check sees them (anything not of the right type is left to the
        tool's own validation)."""
        def text(key: str) -> str | None:
            value = args.get(key)
            return value if isinstance(value, str) and value != NOT_KNOWN_YET else None

        row = args.get("header_row")
        names = args.get("names")
        return cls(text("sheet"), text("encoding"), row if isinstance(row, int) and row >= 0 else None,
                   [str(n) for n in names] if isinstance(names, list) and names else None,
                   NOT_KNOWN_YET in (row, names))


@dataclass
class Table:
    rows: list[dict[str, Any]]
    lines: Sequence[int]  # the file line (sheet row) each row starts on, for messages (an array: 200,000 ints)
    notes: list[str] = field(default_factory=list)  # what was decided for the user, in a sentence each


def read_table(path: Path, name: str, shape: Shape, *, limit: int | None = None) -> Table:
    """Every row of a file already resolved and allowed (`name` is how the user wrote it, for messages); at most
    `limit` rows after the header when given."""
    suffix, packed = kind_of(path, name)
    if suffix == ".xlsx":
        return _xlsx(path, name, shape, limit)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl(_bytes(path, name, packed, None).decode("utf-8", errors="replace").splitlines(), name)
    if not packed:
        return _text_file(path, name, shape, suffix, limit)
    table = _text(_bytes(path, name, packed, None), name, shape, suffix, final=True, limit=limit)
    table.notes.insert(0, _("unpacked gzip"))
    return table


def check_table(path: Path, args: dict[str, Any]) -> None:
    """Before a run, from the start of the file only: its type is known, it decodes, a workbook opens and has the
    sheet asked for, the header is found (or the first row is data and no names were given), no row breaks the
    columns beyond repair, and there is a row under the header unless `allow_empty`."""
    name = path.name
    shape = Shape.of(args)
    suffix, packed = kind_of(path, name)
    if suffix == ".xlsx":
        if args.get("sheet") == NOT_KNOWN_YET:
            shape = Shape(told_by_the_run=True)  # which sheet the run will read is not known: the first one opens
            _xlsx(path, name, shape, 2)
            return
        rows = _xlsx(path, name, shape, 2).rows
    else:
        raw = _bytes(path, name, packed, SNIFF_BYTES)
        final = len(raw) < SNIFF_BYTES
        if suffix in (".jsonl", ".ndjson"):
            head = raw.decode("utf-8", errors="replace").splitlines()
            rows = _jsonl(head if final else head[:-1], name).rows[:1]
        else:
            rows = _text(raw, name, shape, suffix, final=final, limit=None).rows
        if not final and not rows:
            return  # the look ended inside the first row (a cell of a megabyte): the file has more than a header
    if not rows and args.get("allow_empty") is not True:
        raise ToolArgumentError("path", _("'{name}' has no rows under its header; check the export (or set "
                                          "allow_empty: true if an empty file is expected)").format(name=name))


def kind_of(path: Path, name: str) -> tuple[str, bool]:
    """The table type a file holds ('.csv', '.xlsx' …) and whether it is gzipped (by its name or its first bytes).
    A csv that is really a workbook is read as one."""
    packed = path.suffix.lower() == ".gz"
    suffix = Path(path.stem).suffix.lower() if packed else path.suffix.lower()
    if suffix not in SUFFIXES or (packed and suffix == ".xlsx"):
        raise ToolArgumentError("path", _("'{name}': unsupported file type '{value}'; use .csv, .xlsx or .jsonl (a "
                                          ".csv, .txt or .jsonl may be gzipped: .csv.gz)").format(
                                            name=name, value=path.suffix.lower()))
    with path.open("rb") as handle:
        magic = handle.read(4)
    if suffix in TEXT_SUFFIXES and magic == b"PK\x03\x04" and zipfile.is_zipfile(path):
        return ".xlsx", False
    return suffix, packed or magic[:2] == b"\x1f\x8b"


def _bytes(path: Path, name: str, packed: bool, budget: int | None) -> bytes:
    if not packed:
        with path.open("rb") as handle:
            return handle.read(budget) if budget is not None else handle.read()
    cap = budget if budget is not None else MAX_UNPACKED
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(cap + 1)
    except (OSError, EOFError) as exc:
        raise ToolArgumentError("path", _("'{name}' is gzipped but does not unpack ({exc}); download or export it "
                                          "again").format(name=name, exc=exc)) from None
    if budget is None and len(data) > cap:
        raise ToolArgumentError("path", _("'{name}' unpacks to more than {number} MB; split it, or read a part of "
                                          "it").format(name=name, number=cap // 2 ** 20))
    return data[:cap]


def _text_file(path: Path, name: str, shape: Shape, suffix: str, limit: int | None) -> Table:
    """A csv read as it is decoded, a line at a time: neither its bytes nor its text are ever held whole (200,000
    rows stay the rows). An encoding that fails part way is given up for the next from the start."""
    for enc in (shape.encoding,) if shape.encoding else ENCODINGS:
        try:
            with path.open(encoding=enc, newline="") as handle:
                return _parse(handle, name, shape, suffix, limit)
        except (UnicodeDecodeError, LookupError):
            continue
    raise _undecodable(name)


def _undecodable(name: str) -> ToolArgumentError:
    return ToolArgumentError("encoding", _("'{name}' is neither UTF-8 nor GBK (is it a csv file at all?); pass "
                                           "encoding: explicitly, or export it again as CSV UTF-8").format(
                                             name=name))


def decode(raw: bytes, encoding: str | None, name: str, *, final: bool = True) -> str:
    """The text of a csv in the first encoding that fits (`final`: the bytes end the file, else a character cut
    at the end is not an error)."""
    for enc in (encoding,) if encoding else ENCODINGS:
        try:
            return str(codecs.getincrementaldecoder(enc)().decode(raw, final=final))
        except (UnicodeDecodeError, LookupError):
            continue
    raise _undecodable(name)


def _text(raw: bytes, name: str, shape: Shape, suffix: str, *, final: bool, limit: int | None) -> Table:
    text = decode(raw, shape.encoding, name, final=final)
    del raw  # the bytes are not needed once decoded: a big export is not held twice while its rows are built
    if not final:
        text = text[: text.rfind("\n") + 1]  # the last line may be cut by the look: leave it out
    return _parse(_lines(text), name, shape, suffix, limit)


def _parse(lines: Iterator[str], name: str, shape: Shape, suffix: str, limit: int | None) -> Table:
    preferred = "\t" if suffix == ".tsv" else ","
    head = list(islice(lines, LOOK))
    separator = choose_separator([line.rstrip("\r\n") for line in head], preferred)
    records = _split(chain(head, lines), separator, name)
    table = _shaped(records, name, shape, separator, limit)
    if separator != preferred:
        table.notes.insert(0, _("columns split at each {separator}").format(separator=separator_name(separator)))
    return table


def _split(lines: Iterator[str], separator: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its fields) for every record that is not blank."""
    if separator == WHITESPACE:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line.split()
        return
    csv.field_size_limit(MAX_CELL)  # real exports carry long texts in one cell; the default is 128 KB
    reader = csv.reader(lines, delimiter=separator)
    start = 1
    try:
        for record in reader:
            if any(record) and (len(record) > 1 or record[0].strip()):  # not a blank line, not `,,,`
                yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ToolArgumentError("path", _("'{name}' line {line_num}: {exc}; check the quoting around that line, or "
                                          "save the file again as CSV").format(
                                            name=name, line_num=reader.line_num, exc=exc)) from None


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their endings, sliced one at a time (a StringIO over a 20 MB text is a 40 MB copy)."""
    if "\n" not in text and "\r" in text:  # old Mac line ends: let io split them
        yield from io.StringIO(text, newline="")
        return
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


SHARED_VALUES = 50_000  # distinct short values kept for sharing; past it, a column is not categorical anyway


def _shaped(records: Iterator[tuple[int, Sequence[Any]]], name: str, shape: Shape, separator: str,
            limit: int | None) -> Table:
    """Rows keyed by the header: found under any title lines (or as told), the rows under it fitted to its width."""
    head = list(islice(records, LOOK))
    notes: list[str] = []
    header, start = _header(head, name, shape, notes)
    width = len(header)
    columns = Columns.of([r for _line, r in head[start:]], width)
    rows: list[dict[str, Any]] = []
    lines = array("l")
    mended: dict[int, list[int]] = {}
    broken: list[int] = []
    shared: dict[Any, Any] = {}  # one object per repeated short value (a date, a channel, a score): 200,000 rows
    for line, record in chain(head[start:], records):  # streamed: the file's rows are never held twice
        if limit is not None and len(rows) >= limit:
            break
        if len(shared) < SHARED_VALUES:
            record = [shared.setdefault(v, v) if isinstance(v, str) and len(v) <= 32 else v for v in record]
        if len(record) != width:
            cells = list(record)
            while len(cells) > width and not str(cells[-1] or "").strip():
                cells.pop()  # `a,b,c,,` — Excel's padding, nothing lost
            if len(cells) > width:
                fixed = mend([str(c) for c in cells], columns, separator) if separator != "" else None
                if fixed is None:
                    broken.append(line)
                    continue
                cells, column = fixed
                mended.setdefault(column, []).append(line)
            record = [*cells, *[None] * (width - len(cells))]
        rows.append(dict(zip(header, record, strict=True)))
        lines.append(line)
    if broken:
        raise ToolArgumentError("path", (
            _("'{name}' line {lines}: more fields than the header's {width}, and no single text column explains "
              "them (an unquoted {separator} inside a text?); put that text in quotes, or export the file again as "
              "CSV").format(
                name=name, lines=_some(broken), width=width, separator=separator_name(separator))))
    for column, where in mended.items():
        notes.append(_("line {lines} had more fields than the header: the text of column '{column}' holds an unquoted "
                       "{separator}; the extra parts were joined back into that column, nothing of the text was "
                       "lost").format(lines=_some(where), column=header[column], separator=separator_name(separator)))
    return Table(rows, lines, notes)


def _header(head: list[tuple[int, Sequence[Any]]], name: str, shape: Shape,
            notes: list[str]) -> tuple[list[str], int]:
    """The column names and the index in `head` of the first row under the header."""
    if not head and not shape.names:
        return [], 0
    if shape.header_row == 0 or (shape.names and shape.header_row is None):
        width = max((len(r) for _line, r in head), default=0)
        header = shape.names or [f"col{j + 1}" for j in range(width)]
        return _given(header, width, name), 0
    if shape.header_row is not None:
        index = next((i for i, (line, _row) in enumerate(head) if line == shape.header_row), None)
        if index is None:
            raise ToolArgumentError("header_row", _("'{name}' has no row {header_row} with anything in it (rows "
                                                    "with content start at {value})").format(
                                                      name=name, header_row=shape.header_row,
                                                      value=head[0][0] if head else 1))
    else:
        try:
            index = find_header([r for _line, r in head])
        except NoHeader as exc:
            if shape.told_by_the_run:
                return header_names(head[0][1])[0], 1
            first = ", ".join(str(v) for v in exc.first[:6]) + (", …" if len(exc.first) > 6 else "")
            raise ToolArgumentError("names", (
                _("'{name}': the first row looks like data, not column names ({first}); give the columns' names in "
                  "order with names: [{joined}] (or header_row: 1 if that row is the header)").format(
                    name=name, first=first, joined=', '.join(f'col{j + 1}' for j in range(len(exc.first)))))) from None
    header, renamed = header_names(head[index][1])
    if shape.names:
        header = _given(shape.names, len(header), name)
    if index > 0:
        title = " / ".join(",".join(str(v) for v in r if v not in (None, "")) for _line, r in head[:index])
        notes.append(_("the header is line {line} (above it, a title: '{title}'); if that is wrong, give "
                       "header_row:").format(line=head[index][0], title=title[:60]))
    notes.extend(renamed)
    return header, index + 1


def _given(names: list[str], width: int, name: str) -> list[str]:
    if width and len(names) != width:
        raise ToolArgumentError("names", _("names has {value} names but '{name}' has {width} columns; give one "
                                           "name per column, in order").format(
                                             value=len(names), name=name, width=width))
    return list(names)


def _some(lines: list[int]) -> str:
    shown = _(", ").join(map(str, lines[:10]))
    return _("{lines} and more ({count} lines)").format(lines=shown, count=len(lines)) if len(lines) > 10 else shown


def _xlsx(path: Path, name: str, shape: Shape, limit: int | None) -> Table:
    import openpyxl

    handle = path.open("rb")  # a file object: openpyxl goes by the name otherwise, and a .csv may be a workbook
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        handle.close()
        raise ToolArgumentError("path", _("'{name}' is not a readable xlsx workbook ({exc}); open it in Excel or "
                                          "WPS and save it again as .xlsx, or export it as .csv").format(
                                            name=name, exc=exc)) from None
    try:
        if shape.sheet is not None and shape.sheet not in book.sheetnames:
            sheets = ", ".join(book.sheetnames)
            raise ToolArgumentError("sheet", _("'{name}' has no sheet '{sheet}' (sheets: {sheets})").format(
                                                 name=name, sheet=shape.sheet, sheets=sheets))
        sheet = book[shape.sheet] if shape.sheet else book.worksheets[0]
        records = ((n, _json_values(row)) for n, row in enumerate(sheet.iter_rows(values_only=True), start=1)
                   if any(v is not None and str(v).strip() for v in row))
        return _shaped(records, name, shape, "", limit)
    finally:
        book.close()
        handle.close()


PLAIN = (str, int, float, bool, type(None))


def _json_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A workbook row with its dates, times and durations as the JSON text pydantic would give them, so rows are
    JSON values as read (and handed on without a copy)."""
    if all(isinstance(v, PLAIN) for v in row):
        return row
    from pydantic_core import to_jsonable_python

    return tuple(v if isinstance(v, PLAIN) else to_jsonable_python(v) for v in row)


def _jsonl(lines: list[str], name: str) -> Table:
    rows, numbers = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ToolArgumentError("path", _("'{name}' line {number}: not JSON ({msg} at column {colno}); a "
                                              ".jsonl file holds one JSON object per line").format(
                                                name=name, number=number, msg=exc.msg, colno=exc.colno)) from None
        if not isinstance(row, dict):
            raise ToolArgumentError("path", _("'{name}' line {number}: a JSON object {{…}} per line is "
                                              "expected").format(name=name, number=number))
        rows.append(row)
        numbers.append(number)
    return Table(rows, numbers)
