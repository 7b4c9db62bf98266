"""sheet.read / sheet.write: csv (any separator, UTF-8 or GBK, gzipped or not), xlsx and jsonl."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner import atomic
from runner.i18n import _
from runner.registry import JsonRows, ToolArgumentError, ToolContext, file_check, tool
from runner.tables import Shape, Table, check_table, read_table
from runner.wording import item_schema, label, number
from tools.columns import text_and_id
from tools.sheet_ledger import WIDTH_SAMPLE, Ledger


class SheetReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="csv, xlsx or jsonl file")
    columns: list[str] | dict[str, str] | None = Field(
        None, description="columns to keep, or {source: new_name} to keep and rename")
    sheet: str | None = Field(None, description="xlsx sheet name (default: the first)")
    limit: int | None = Field(None, ge=0, description="read at most this many rows")
    encoding: str | None = Field(None, description="csv encoding; default: detect UTF-8 / GBK")
    text_column: str | None = Field(None, description="give rows as {id, text}: the column holding the text, or "
                                                      "'auto' (the text column with the longest entries)")
    id_column: str | None = Field(None, description="with text_column: the id column, or 'auto' (an id-like "
                                                    "column, else rows are numbered)")
    allow_empty: bool = Field(False, description="accept a file with no rows (default: an empty file stops the "
                                                 "run before anything is spent on it)")
    header_row: int | None = Field(None, ge=0, description="the line (sheet row) holding the column names; "
                                   "default: found under any title lines; 0: the file has no header")
    names: list[str] | None = Field(None, description="the columns' names in order, for a file without a header")


class SheetReadOutput(BaseModel):
    rows: JsonRows
    count: int
    columns: list[str]
    notice: str | None = Field(None, description="what was decided for you (header row, separator, mended rows, "
                                                 "text and id columns)")
    text_column: str | None = Field(None, description="with text_column: the column the text came from")
    id_column: str | None = Field(None, description="with text_column: the id column ('' when rows were numbered)")


@tool("sheet.read", journal=False)
async def sheet_read(args: SheetReadInput, ctx: ToolContext) -> SheetReadOutput:
    """Read rows from a csv, xlsx or jsonl file."""
    return await asyncio.to_thread(_read, args, ctx)  # a 200,000-row workbook takes seconds: off the event loop


def _read(args: SheetReadInput, ctx: ToolContext) -> SheetReadOutput:
    table = read_table_arg(args.path, ctx, Shape(args.sheet, args.encoding, args.header_row, args.names),
                           limit=args.limit)
    rows, notes = table.rows, table.notes
    if not rows and not args.allow_empty:
        raise ToolArgumentError("path", _("'{path}' has no rows; check the export (or set allow_empty: true if an "
                                          "empty file is expected)").format(path=args.path))
    if args.text_column is not None or args.id_column is not None:
        rows, text, id_, chosen = text_and_id(rows, args.text_column or "auto", args.id_column or "auto", args.path)
        return SheetReadOutput.model_construct(rows=rows, count=len(rows), columns=["id", "text"],
                                               notice="；".join([*notes, *chosen]) or None, text_column=text,
                                               id_column=id_)
    rows = _select(rows, args.columns, args.path)
    # built, not validated: the rows are the reader's own dicts, and validating 200,000 of them copies every one
    return SheetReadOutput.model_construct(rows=rows, count=len(rows), columns=list(rows[0]) if rows else [],
                                           notice="；".join(notes) or None, text_column=None, id_column=None)


def read_table_arg(name: str, ctx: ToolContext, shape: Shape, *, limit: int | None = None) -> Table:
    """The table a tool's `path` argument names: resolved and allowed, read by the one table reader."""
    path = ctx.input_path(name)
    if not path.exists():
        raise ToolArgumentError("path", _("file '{name}' not found (looked in {parent})").format(
                                            name=name, parent=path.parent))
    return read_table(path, name, shape, limit=limit)


@file_check("sheet.read", "path")
def sniff_table(path: Path, args: dict[str, Any]) -> None:
    """Before a run: the file is a table this tool reads, from the start of the file only (see check_table)."""
    check_table(path, args)


def _select(rows: list[dict[str, Any]], columns: list[str] | dict[str, str] | None,
            name: str) -> list[dict[str, Any]]:
    if not columns:
        return rows
    mapping = columns if isinstance(columns, dict) else {c: c for c in columns}
    present = set(rows[0]) if rows else set(mapping)
    missing = [c for c in mapping if c not in present]
    if missing:
        raise ToolArgumentError("columns", _("'{name}' has no column {missing} (columns: {columns})").format(
                                               name=name, missing=', '.join(map(repr, missing)),
                                               columns=', '.join(sorted(present))))
    return [{new: row.get(old) for old, new in mapping.items()} for row in rows]


class SheetWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="output file in the run folder: .xlsx, .csv or .jsonl")
    rows: list[dict[str, Any]]
    sheet: str = Field("Sheet1", description="xlsx sheet name")
    columns: list[str] | dict[str, str] | None = Field(
        None, description="column order (default: keys of the rows), or {field: header}; a field may be a "
                          "dotted path into nested values, e.g. persona.name")
    mode: Literal["replace", "append"] = "replace"


class SheetWriteOutput(BaseModel):
    path: str
    count: int
    sheet: str
    notice: str | None = Field(None, description="what was changed to fit the file (control characters removed)")


@tool("sheet.write")
async def sheet_write(args: SheetWriteInput, ctx: ToolContext) -> SheetWriteOutput:
    """Write rows to an xlsx (styled header, frozen, sized columns), csv or jsonl file."""
    target = ctx.artifact_path(args.path)
    with _LOCKS_LOCK:
        lock = _FILE_LOCKS.setdefault(target, threading.Lock())

    def write() -> SheetWriteOutput:
        with lock:  # two steps writing sheets of one workbook at once: each rebuild sees the other's sheet
            return _write(args, ctx, target)

    return await asyncio.to_thread(write)  # rebuilding a big workbook takes seconds: off the event loop


_FILE_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _write(args: SheetWriteInput, ctx: ToolContext, target: Path) -> SheetWriteOutput:
    suffix = target.suffix.lower()
    if suffix not in (".xlsx", ".csv", ".jsonl"):
        raise ToolArgumentError("path", _("'{path}': unsupported file type '{suffix}'; use .xlsx, .csv or "
                                          ".jsonl").format(path=args.path, suffix=suffix))
    fields = list(args.columns or _columns(args.rows))
    if isinstance(args.columns, dict):
        headers = [args.columns[f] for f in fields]
    else:  # a table a person opens gets the fields' titles as headers; a jsonl file stays data
        headers = _titled(fields, ctx.arg_schema("rows")) if suffix != ".jsonl" else fields
    shown = _yes_no if suffix != ".jsonl" else _as_is
    rows = [{h: shown(_lookup(row, f)) for f, h in zip(fields, headers, strict=True)} for row in args.rows] \
        if args.columns or suffix != ".jsonl" else args.rows
    ledger = Ledger(ctx.run_dir, target)
    if not ledger.known() and target.exists() and (suffix == ".xlsx" or args.mode == "append"):
        _seed(ledger, target, args.path)  # the file was there before this run wrote to it: keep what it holds
    ledger.put(args.sheet if suffix == ".xlsx" else "", ctx.step_id, headers, rows, args.mode)
    removed: Counter[str] = Counter()
    with atomic.replacing(target) as temporary:
        if suffix == ".xlsx":
            removed = _render_xlsx(ledger, temporary)
        else:
            {".csv": _render_csv, ".jsonl": _render_jsonl}[suffix](ledger, temporary)
    notice = None
    if removed:
        where = _(", ").join(_("{column} {count}").format(column=column, count=count)
                             for column, count in removed.most_common())
        notice = _("removed {count} control characters a workbook cannot hold ({where}); the rest of the text is "
                   "kept as it was").format(count=sum(removed.values()), where=where)
    return SheetWriteOutput(path=str(target), count=len(args.rows), sheet=args.sheet, notice=notice)


def _titled(fields: list[str], rows_schema: Any) -> list[str]:
    """Each field's `title` from the rows' schema (a step output's `{name: {type: string, title: 主题}}`) where
    there is one and it names no other column, else the field's name."""
    item = item_schema(rows_schema)
    headers: list[str] = []
    for name in fields:
        title = label(name, item)
        headers.append(title if title not in headers and title not in fields else name)
    return headers


def _yes_no(value: Any) -> Any:
    return number(value) if isinstance(value, bool) else value  # 是/否, as the console and the pages say it


def _as_is(value: Any) -> Any:
    return value


def _seed(ledger: Ledger, target: Path, name: str) -> None:
    sheets = _sheet_names(target, name) if target.suffix.lower() == ".xlsx" else [None]
    for sheet in sheets:
        rows = read_table(target, name, Shape(sheet=sheet, header_row=1)).rows
        ledger.put(sheet or "", "existing", _columns(rows), rows, "replace")


def _render_csv(ledger: Ledger, temporary: Path) -> None:
    for _title, columns, rows in ledger.sheets():
        with temporary.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({c: _cell(r.get(c)) for c in columns} for r in rows)


def _render_jsonl(ledger: Ledger, temporary: Path) -> None:
    with temporary.open("w", encoding="utf-8") as fh:
        for _title, _columns, rows in ledger.sheets():
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _lookup(row: dict[str, Any], field: str) -> Any:
    """A field, or a dotted path into nested dicts (`persona.name`)."""
    if field in row or "." not in field:
        return row.get(field)
    value: Any = row
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return "；".join(str(v) for v in value)  # a list of short texts reads better than JSON in a cell
    return json.dumps(value, ensure_ascii=False, default=str)


def _render_xlsx(ledger: Ledger, temporary: Path) -> Counter[str]:
    """Every sheet of the ledger, streamed (openpyxl write-only mode: memory does not grow with the rows). Returns
    how many control characters a workbook cannot hold (`\x0b`, `\x1b`, … in a review or a model's text) were
    taken out, per column: openpyxl refuses the whole file over one."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = openpyxl.Workbook(write_only=True)
    removed: Counter[str] = Counter()
    bold, fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="4472C4")
    wrap = Alignment(wrap_text=True, vertical="top")
    for sheet, columns, rows in ledger.sheets():
        ws = book.create_sheet(sheet)
        widths = [max(6, _display_width(c)) for c in columns]
        for n, row in enumerate(rows):
            if n >= WIDTH_SAMPLE:
                break
            for j, column in enumerate(columns):
                widths[j] = max(widths[j], _display_width(_cell(row.get(column))))
        for j, width in enumerate(widths):
            ws.column_dimensions[get_column_letter(j + 1)].width = min(60, width + 2)
        ws.freeze_panes = "A2"
        header = []
        for column in columns:
            cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", column))
            cell.font, cell.fill = bold, fill
            header.append(cell)
        ws.append(header)
        for row in ledger.sheets_rows(sheet):
            values: list[Any] = []
            for column in columns:
                value = _cell(row.get(column))
                if isinstance(value, str) and ILLEGAL_CHARACTERS_RE.search(value):
                    value, count = ILLEGAL_CHARACTERS_RE.subn("", value)
                    removed[column] += count
                if isinstance(value, str) and len(value) > 40:
                    cell = WriteOnlyCell(ws, value=value)
                    cell.alignment = wrap
                    values.append(cell)
                else:
                    values.append(value)
            ws.append(values)
    book.save(temporary)
    return removed


def _sheet_names(path: Path, name: str) -> list[str | None]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ToolArgumentError("path", _("'{name}' exists but is not a readable xlsx workbook ({exc}); move it "
                                          "away or write to another path").format(name=name, exc=exc)) from None
    names: list[str | None] = list(book.sheetnames)
    book.close()
    return names


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text[:200])  # CJK characters are two wide
