"""metrics.*: period-over-period deltas, anomaly flags with a stated method, and PNG charts with
Chinese labels. Numbers are computed here, deterministically — never by the LLM."""

from __future__ import annotations

import asyncio
import statistics
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner import atomic
from runner.errors import framed
from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, file_check, tool
from runner.tables import Shape, Table, check_table
from tools.columns import is_id_name, not_a_measure
from tools.metrics_rollup import (
    PERIODS,
    parse_rules,
    rollup,
    same_column,
    suggest_aggregate,
)

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d",
            "%Y/%m/%d %H:%M:%S", "%Y%m%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m")


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise NotATime(_("cannot read '{text}' as a date or time (e.g. 2026-11-23 or 2026-11-23 09:00)").format(
                             text=text)) from None


class NotATime(ValueError):
    """A time cell that is not a date or time; the row it is in is added by the caller."""


def parse_number(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().replace(",", "").rstrip("%")
    try:
        return float(text)
    except ValueError:
        raise ValueError(_("{where}: '{value}' is not a number").format(where=where, value=value)) from None


def stamper(times: list[datetime]) -> Callable[[datetime], str]:
    """Dates alone for a daily series (every time at midnight), full times otherwise."""
    daily = all(t.hour == t.minute == t.second == t.microsecond == 0 for t in times)
    return (lambda t: t.strftime("%Y-%m-%d")) if daily else (lambda t: t.isoformat(sep=" "))


def series(rows: list[dict[str, Any]], time_field: str, value_field: str) -> list[tuple[datetime, float]]:
    if rows and time_field not in rows[0]:
        raise ToolArgumentError("time", _("no column '{time_field}' (columns: {joined})").format(
                                            time_field=time_field, joined=', '.join(rows[0])))
    if rows and value_field not in rows[0]:
        raise ToolArgumentError("values", _("no column '{value_field}' (columns: {joined})").format(
                                              value_field=value_field, joined=', '.join(rows[0])))
    points = []
    for i, row in enumerate(rows):
        number = parse_number(row.get(value_field), _("row {number} column '{value_field}'").format(
                                                        number=i + 1, value_field=value_field))
        if number is not None:
            points.append((parse_time(row[time_field]), number))
    return sorted(points)


class LoadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="csv (UTF-8 or GBK), xlsx or jsonl: a time series, a KPI table, or one row per "
                                  "order or event (then give `aggregate`)")
    time: str = Field("date", description="time column")
    values: list[str] | None = Field(None, description="metric columns (default: every all-numeric column that "
                                                       "is not an identifier)")
    aggregate: dict[str, str] | None = Field(
        None, description="roll rows up to periods, each metric by its rule: {orders: count, buyers: "
                          "nunique(user_id), revenue: sum(amount)}; rules: count, sum, mean, min, max, nunique")
    by: Literal["hour", "day", "week", "month"] = Field("day", description="the period `aggregate` rolls up to")
    sheet: str | None = None
    encoding: str | None = None
    header_row: int | None = Field(None, ge=0, description="the line (sheet row) holding the column names; "
                                   "default: found under any title lines; 0: the file has no header")
    names: list[str] | None = Field(None, description="the columns' names in order, for a file without a header")


class LoadOutput(BaseModel):
    rows: list[dict[str, Any]] = Field(description="sorted by time; times ISO, metrics numbers (None if blank)")
    values: list[str]
    count: int
    start: str | None
    end: str | None
    missing: dict[str, int] = Field(description="blank cells per metric")
    duplicate_times: int
    rules: dict[str, str] = Field(default_factory=dict, description="each aggregated metric's rule")
    events: int | None = Field(None, description="rows read before aggregation")
    periods: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="aggregated loads: the same metrics rolled up per week and month "
                                          "from the events (for metrics.compare `periods`)")
    notice: str | None = Field(None, description="what was decided for you (header row, separator, metrics)")


def _is_number(value: Any) -> bool:
    try:
        return parse_number(value, "") is not None
    except ValueError:
        return False


def is_metric(raw: list[dict[str, Any]], column: str) -> bool:
    """A numeric column worth adding up: not named like an identifier, not identifiers or clock times by value."""
    return not is_id_name(column) and not_a_measure([r.get(column) for r in raw]) is None


def _numeric_columns(raw: list[dict[str, Any]], columns: list[str], time: str) -> list[str]:
    return [c for c in columns if c != time and any(_is_number(r.get(c)) for r in raw)
            and all(_is_number(r.get(c)) or r.get(c) in (None, "") for r in raw)]


def _parse_rows(table: Table, path: str, time: str, numbers: list[str]) -> list[tuple[datetime, dict[str, Any]]]:
    rows: list[tuple[datetime, dict[str, Any]]] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        where = _("'{path}' line {line}").format(path=path, line=line)
        try:
            moment = parse_time(row.get(time))
            parsed = {m: parse_number(row.get(m), _("{where} column '{m}'").format(where=where, m=m)) for m in numbers}
        except ValueError as exc:
            said = framed(where, str(exc)) if isinstance(exc, NotATime) else str(exc)
            raise ToolArgumentError("path", said) from None
        rows.append((moment, {**row, **parsed}))
    rows.sort(key=lambda pair: pair[0])
    return rows


@file_check("metrics.load", "path")
def _sniff(path: Path, args: dict[str, Any]) -> None:
    """The same table reader as sheet.read, the same look before a run."""
    check_table(path, args)


@tool("metrics.load", journal=False)
async def metrics_load(args: LoadInput, ctx: ToolContext) -> LoadOutput:
    """Load a time series, a KPI table, or event rows rolled up by `aggregate`: times parsed, numbers cleaned."""
    from tools.sheet import read_table_arg

    table = read_table_arg(args.path, ctx, Shape(args.sheet, args.encoding, args.header_row, args.names))
    raw = table.rows
    if not raw:
        raise ToolArgumentError("path", _("'{path}' has no rows; there is nothing to report on").format(
                                            path=args.path))
    columns = list(raw[0])
    time_column = same_column(args.time, columns)
    if time_column is None:
        raise ToolArgumentError("time", _("no column '{time}' in '{path}' (columns: {joined})").format(
                                            time=args.time, path=args.path, joined=', '.join(columns)))
    values = [same_column(v, columns) or v for v in args.values] if args.values is not None else None
    args = args.model_copy(update={"time": time_column, "values": values})
    notice = "；".join(table.notes) or None
    if args.aggregate:
        return _load_aggregated(args, table, columns).model_copy(update={"notice": notice})
    numeric = _numeric_columns(raw, columns, args.time)
    metrics = args.values if args.values is not None else [c for c in numeric if is_metric(raw, c)]
    for name in metrics:
        if raw and name not in columns:
            raise ToolArgumentError("values", _("no column '{name}' in '{path}' (columns: {joined})").format(
                                                  name=name, path=args.path, joined=', '.join(columns)))
        if is_id_name(name):
            raise ToolArgumentError("values", _("'{name}' holds identifiers, not a metric; to count distinct ones "
                                                "use aggregate: {{{name}_count: nunique({name})}}").format(
                                                  name=name))
    rows = _parse_rows(table, args.path, args.time, metrics)
    times = [m for m, _row in rows]
    repeated = len(times) - len(set(times))
    if repeated >= max(3, len(times) // 10):
        raise ToolArgumentError("aggregate", (
            _("'{path}': {repeated} of {rows} rows repeat a time already seen — this looks like one row per order "
              "or event, not one row per day or time, and summing or charting it row by row would be wrong. Say "
              "how rows roll up to a day with `aggregate:` (rules: count, sum, mean, min, max, nunique), e.g.\n  "
              "{suggestion}").format(
                path=args.path, repeated=repeated, rows=len(times),
                suggestion=_again_with(ctx, args.path,
                                   suggest_aggregate(columns, [c for c in numeric if is_metric(raw, c)])))))
    stamp = stamper(times)
    out = [{**row, args.time: stamp(m)} for m, row in rows]
    return LoadOutput(rows=out, values=metrics, count=len(out), start=stamp(times[0]) if times else None,
                      end=stamp(times[-1]) if times else None,
                      missing={m: sum(r[m] is None for r in out) for m in metrics}, duplicate_times=repeated,
                      notice=notice)


def _again_with(ctx: ToolContext, table: str, aggregate: str) -> str:
    """The command that runs this playbook again on the same table with `aggregate` given — pasteable when the
    playbook takes `aggregate` as an input (kpi_report does) — else the `aggregate:` argument to write."""
    import shlex

    run = ctx.store.get_run(ctx.run_id.split(".")[0]) if ctx.store is not None else None
    inputs = (run or {}).get("inputs") or {}
    given = next((name for name, value in inputs.items() if value == table), None)
    if run is None or given is None or "aggregate" not in inputs:
        return f"aggregate: {aggregate}"
    return (f"playbook run {shlex.quote(str(run['path']))} -i {shlex.quote(f'{given}={table}')} "
            f"-i {shlex.quote(f'aggregate={aggregate}')}")


def _load_aggregated(args: LoadInput, table: Table, columns: list[str]) -> LoadOutput:
    assert args.aggregate is not None
    rules = parse_rules(args.aggregate, columns)
    summed = sorted({r.column for r in rules if r.column and r.function not in ("count", "nunique")})
    events = _parse_rows(table, args.path, args.time, summed)
    rows = rollup(events, rules, args.by, args.time)
    coarser = PERIODS[PERIODS.index(args.by) + 1:]
    periods = {p: rollup(events, rules, p, args.time) for p in coarser if p in ("week", "month")}
    names = [r.name for r in rules]
    return LoadOutput(rows=rows, values=names, count=len(rows), start=rows[0][args.time] if rows else None,
                      end=rows[-1][args.time] if rows else None,
                      missing={n: sum(r[n] is None for r in rows) for n in names}, duplicate_times=0,
                      rules={r.name: r.text for r in rules}, events=len(events), periods=periods)


class AnomalyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]]
    time: str = "timestamp"
    value: str = "value"
    window: int = Field(28, ge=5, description="points of history each point is judged against")
    threshold: float = Field(3.5, gt=0, description="robust z-score above which a point is flagged")
    recent: int = Field(14, ge=1, description="how many of the latest points to return as `recent`")


class Point(BaseModel):
    time: str
    value: float
    baseline: float | None
    score: float | None
    anomaly: bool


class AnomalyOutput(BaseModel):
    method: str
    points: list[Point]
    anomalies: list[Point]
    recent: list[Point] = Field(description="the latest points, flagged or not (what a report looks at)")
    count: int


@tool("metrics.anomalies")
async def metrics_anomalies(args: AnomalyInput, ctx: ToolContext) -> AnomalyOutput:
    """Flag points far from their recent history (rolling median and MAD, robust z-score)."""
    data = series(args.rows, args.time, args.value)
    stamp = stamper([t for t, _value in data])
    points: list[Point] = []
    least = max(5, args.window // 4)  # fewer points of history than this: the point is not judged
    for i, (moment, value) in enumerate(data):
        history = [v for _time, v in data[max(0, i - args.window):i]]
        baseline = score = None
        if len(history) >= least:
            baseline = statistics.median(history)
            mad = statistics.median(abs(v - baseline) for v in history)
            scale = mad / 0.6745 if mad else (statistics.pstdev(history) or 1e-9)
            score = round((value - baseline) / scale, 3)
        points.append(Point(time=stamp(moment), value=value,
                            baseline=None if baseline is None else round(baseline, 4), score=score,
                            anomaly=score is not None and abs(score) > args.threshold))
    method = anomaly_method(len(data), args.window, least, args.threshold, [p.time for p in points])
    anomalies = [p for p in points if p.anomaly]
    return AnomalyOutput(method=method, points=points, anomalies=anomalies, recent=points[-args.recent:],
                         count=len(anomalies))


def anomaly_method(count: int, window: int, least: int, threshold: float, times: list[str]) -> str:
    """What was really done, including the points near the start that had less history than the window."""
    text = _("robust z-score: each point is compared with the median and MAD of the {window} points before it, "
             "z = (x − median) / (MAD / 0.6745), |z| > {threshold:g} counts as an anomaly").format(
        window=window, threshold=threshold)
    unjudged = min(count, least)
    short = max(0, min(count, window) - unjudged)
    if unjudged:
        text += _("; the first {count} points have fewer than {least} points before them and are not judged").format(
            count=unjudged, least=least)
    if short:
        text += _("; the next {count} points (up to {until}) are judged on the {least}–{most} points before them, "
                  "fewer than the window").format(count=short, until=times[unjudged + short - 1], least=least,
                                                  most=window - 1)
    return text


class ChartInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="PNG file in the run folder")
    rows: list[dict[str, Any]]
    time: str = "date"
    values: list[str]
    title: str = ""
    ylabel: str = ""
    anomalies: list[dict[str, Any]] = Field(default_factory=list, description="points to mark (time, value)")


class ChartOutput(BaseModel):
    path: str
    points: int


CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC"]


def cjk_font() -> str | None:
    """A CJK font matplotlib can use. matplotlib caches its font list; a cache written before the CJK font
    was installed does not know it, so on a miss the list is rebuilt once from the system's fonts."""
    from matplotlib import font_manager

    def known() -> str | None:
        available = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in available), None)

    found = known()
    if found is None and not _REBUILT:
        _REBUILT.append(True)
        rebuild = getattr(font_manager, "_load_fontmanager", None)  # rebuilds and rewrites the cache file
        font_manager.fontManager = rebuild(try_read_cache=False) if rebuild else font_manager.FontManager()
        found = known()
    return found


_REBUILT: list[bool] = []
NO_CJK_FONT = ("no CJK font is installed, so Chinese labels would show as boxes. Install one, then run again: "
               "Debian/Ubuntu: `sudo apt-get install fonts-noto-cjk`; macOS: PingFang SC comes with the system "
               "(or `brew install --cask font-noto-sans-cjk-sc`); Windows: Microsoft YaHei comes with the system "
               "(or install Noto Sans CJK SC from https://github.com/notofonts/noto-cjk)")


@tool("metrics.chart", cpu_bound=True)
async def metrics_chart(args: ChartInput, ctx: ToolContext) -> ChartOutput:
    """A line chart as PNG, Chinese labels rendered with a CJK font, anomalies marked."""
    return await asyncio.to_thread(_draw, args, ctx)  # off the event loop


_PLOT_LOCK = threading.Lock()  # pyplot keeps global state: one chart at a time, in a worker thread


def _draw(args: ChartInput, ctx: ToolContext) -> ChartOutput:
    with _PLOT_LOCK:
        return _draw_unlocked(args, ctx)


def _draw_unlocked(args: ChartInput, ctx: ToolContext) -> ChartOutput:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = ctx.artifact_path(args.path)
    font = cjk_font()
    if font is None:
        raise ValueError(NO_CJK_FONT)
    with plt.rc_context({"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"],
                         "axes.unicode_minus": False}):
        figure, axes_ = plt.subplots(figsize=(10, 4.5), dpi=120)
        axes: Any = axes_  # matplotlib's stubs reject datetimes, which it plots fine
        total = 0
        for metric in args.values:
            data = series(args.rows, args.time, metric)
            total += len(data)
            axes.plot([t for t, _value in data], [v for _time, v in data], label=metric, linewidth=1.2)
        if args.anomalies:
            axes.scatter([parse_time(p["time"]) for p in args.anomalies], [float(p["value"]) for p in args.anomalies],
                         color="#d62728", s=18, zorder=3, label=_("anomalies"))
        axes.set_title(args.title)
        axes.set_ylabel(args.ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.autofmt_xdate()
        figure.tight_layout()
        with atomic.replacing(target) as temporary:
            figure.savefig(temporary, format="png")
        plt.close(figure)
    return ChartOutput(path=str(target), points=total)
