"""metrics.*: period-over-period deltas, anomaly flags with a stated method, and PNG charts with
Chinese labels. Numbers are computed here, deterministically — never by the LLM."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.registry import ToolArgumentError, ToolContext, tool

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
        raise ValueError(f"cannot read '{text}' as a date or time (e.g. 2026-11-23 or 2026-11-23 09:00)") from None


def parse_number(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().replace(",", "").rstrip("%")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: '{value}' is not a number") from None


def stamper(times: list[datetime]) -> Callable[[datetime], str]:
    """Dates alone for a daily series (every time at midnight), full times otherwise."""
    daily = all(t.hour == t.minute == t.second == t.microsecond == 0 for t in times)
    return (lambda t: t.strftime("%Y-%m-%d")) if daily else (lambda t: t.isoformat(sep=" "))


def series(rows: list[dict[str, Any]], time_field: str, value_field: str) -> list[tuple[datetime, float]]:
    if rows and time_field not in rows[0]:
        raise ToolArgumentError("time", f"no column '{time_field}' (columns: {', '.join(rows[0])})")
    if rows and value_field not in rows[0]:
        raise ToolArgumentError("values", f"no column '{value_field}' (columns: {', '.join(rows[0])})")
    points = []
    for i, row in enumerate(rows):
        number = parse_number(row.get(value_field), f"row {i + 1} column '{value_field}'")
        if number is not None:
            points.append((parse_time(row[time_field]), number))
    return sorted(points)


class LoadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="csv (UTF-8 or GBK), xlsx or jsonl: a time series or a KPI table")
    time: str = Field("date", description="time column")
    values: list[str] | None = Field(None, description="metric columns (default: every all-numeric column)")
    sheet: str | None = None
    encoding: str | None = None


class LoadOutput(BaseModel):
    rows: list[dict[str, Any]] = Field(description="sorted by time; times ISO, metrics numbers (None if blank)")
    values: list[str]
    count: int
    start: str | None
    end: str | None
    missing: dict[str, int] = Field(description="blank cells per metric")
    duplicate_times: int


def _is_number(value: Any) -> bool:
    try:
        return parse_number(value, "") is not None
    except ValueError:
        return False


@tool("metrics.load")
async def metrics_load(args: LoadInput, ctx: ToolContext) -> LoadOutput:
    """Load a time series or KPI table: times parsed, numbers cleaned ('1,234', '12%'), sorted by time."""
    from tools.sheet import read_rows

    raw = read_rows(args.path, ctx, sheet=args.sheet, encoding=args.encoding)
    columns = list(raw[0]) if raw else []
    if raw and args.time not in columns:
        raise ToolArgumentError("time", f"no column '{args.time}' in '{args.path}' (columns: {', '.join(columns)})")
    metrics = args.values if args.values is not None else [
        c for c in columns if c != args.time and any(_is_number(r.get(c)) for r in raw)
        and all(_is_number(r.get(c)) or r.get(c) in (None, "") for r in raw)]
    for name in metrics:
        if raw and name not in columns:
            raise ToolArgumentError("values", f"no column '{name}' in '{args.path}' (columns: {', '.join(columns)})")
    rows: list[tuple[datetime, dict[str, Any]]] = []
    for i, row in enumerate(raw):
        where = f"'{args.path}' row {i + 2}"
        try:
            moment = parse_time(row.get(args.time))
            numbers = {m: parse_number(row.get(m), f"{where} column '{m}'") for m in metrics}
        except ValueError as exc:
            raise ToolArgumentError("path", f"{where}: {exc}" if str(exc).startswith("cannot") else str(exc)) from None
        rows.append((moment, {**row, **numbers}))
    rows.sort(key=lambda pair: pair[0])
    stamp = stamper([m for m, _ in rows])
    out = [{**row, args.time: stamp(m)} for m, row in rows]
    times = [m for m, _ in rows]
    return LoadOutput(rows=out, values=metrics, count=len(out), start=stamp(times[0]) if times else None,
                      end=stamp(times[-1]) if times else None,
                      missing={m: sum(r[m] is None for r in out) for m in metrics},
                      duplicate_times=len(times) - len(set(times)))


class CompareInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]]
    time: str = Field("date", description="time column")
    values: list[str] = Field(description="metric columns, e.g. [DAU, 新增用户, 收入]")
    period: Literal["day", "week", "month"] = "day"
    agg: Literal["sum", "mean", "last"] = Field("sum", description="how points in one period combine "
                                                                   "(use mean or last for rates)")


class PeriodDelta(BaseModel):
    metric: str
    period: str
    value: float
    previous: float | None
    delta: float | None
    pct: float | None = Field(description="percent change vs the previous period")
    points: int = Field(description="data points in this period")
    complete: bool = Field(description="false for a trailing period with fewer points than usual (a week "
                                       "that is still running); `latest` skips it")


class CompareOutput(BaseModel):
    rows: list[PeriodDelta]
    latest: dict[str, PeriodDelta] = Field(description="the last period of each metric")


def _period_key(moment: datetime, period: str) -> str:
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


@tool("metrics.compare")
async def metrics_compare(args: CompareInput, ctx: ToolContext) -> CompareOutput:
    """Aggregate by day/week/month and compute each period's change against the one before."""
    out: list[PeriodDelta] = []
    latest: dict[str, PeriodDelta] = {}
    for metric in args.values:
        groups: dict[str, list[float]] = {}
        for moment, value in series(args.rows, args.time, metric):
            groups.setdefault(_period_key(moment, args.period), []).append(value)
        previous: float | None = None
        keys = sorted(groups)
        usual = statistics.median(len(groups[k]) for k in keys[:-1]) if len(keys) > 1 else 0
        for key in keys:
            points = groups[key]
            value = sum(points) if args.agg == "sum" else statistics.fmean(points) if args.agg == "mean" else points[-1]
            delta = value - previous if previous is not None else None
            pct = round(delta / previous * 100, 2) if delta is not None and previous else None
            complete = key != keys[-1] or len(points) >= usual
            row = PeriodDelta(metric=metric, period=key, value=round(value, 4), previous=previous,
                              delta=round(delta, 4) if delta is not None else None, pct=pct, points=len(points),
                              complete=complete)
            out.append(row)
            if complete:
                latest[metric] = row
            previous = round(value, 4)
    return CompareOutput(rows=out, latest=latest)


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
    stamp = stamper([t for t, _ in data])
    points: list[Point] = []
    for i, (moment, value) in enumerate(data):
        history = [v for _, v in data[max(0, i - args.window):i]]
        baseline = score = None
        if len(history) >= max(5, args.window // 4):
            baseline = statistics.median(history)
            mad = statistics.median(abs(v - baseline) for v in history)
            scale = mad / 0.6745 if mad else (statistics.pstdev(history) or 1e-9)
            score = round((value - baseline) / scale, 3)
        points.append(Point(time=stamp(moment), value=value,
                            baseline=None if baseline is None else round(baseline, 4), score=score,
                            anomaly=score is not None and abs(score) > args.threshold))
    method = (f"robust z-score: each point against the median and MAD of the previous {args.window} points, "
              f"z = (x − median) / (MAD / 0.6745); flagged when |z| > {args.threshold:g}")
    anomalies = [p for p in points if p.anomaly]
    return AnomalyOutput(method=method, points=points, anomalies=anomalies, recent=points[-args.recent:],
                         count=len(anomalies))


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
    from matplotlib import font_manager

    available = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in available), None)


@tool("metrics.chart")
async def metrics_chart(args: ChartInput, ctx: ToolContext) -> ChartOutput:
    """A line chart as PNG, Chinese labels rendered with a CJK font, anomalies marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = ctx.artifact_path(args.path)
    font = cjk_font()
    if font is None:
        raise ValueError("no CJK font installed, Chinese labels would show as boxes; install Debian's "
                         "fonts-noto-cjk")
    with plt.rc_context({"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"],
                         "axes.unicode_minus": False}):
        figure, axes_ = plt.subplots(figsize=(10, 4.5), dpi=120)
        axes: Any = axes_  # matplotlib's stubs reject datetimes, which it plots fine
        total = 0
        for metric in args.values:
            data = series(args.rows, args.time, metric)
            total += len(data)
            axes.plot([t for t, _ in data], [v for _, v in data], label=metric, linewidth=1.2)
        if args.anomalies:
            axes.scatter([parse_time(p["time"]) for p in args.anomalies], [float(p["value"]) for p in args.anomalies],
                         color="#d62728", s=18, zorder=3, label="异常点")
        axes.set_title(args.title)
        axes.set_ylabel(args.ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(target)
        plt.close(figure)
    return ChartOutput(path=str(target), points=total)
