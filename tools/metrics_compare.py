"""metrics.compare: each period's change against the one before — by day, week or month, each metric by its
own rule when the load rolled events up, and never against a period the data covers only in part."""

from __future__ import annotations

import statistics
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolContext, tool
from tools.metrics import series
from tools.metrics_rollup import coverage_note, period_days, period_key


class CompareInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]]
    time: str = Field("date", description="time column")
    values: list[str] = Field(description="metric columns, e.g. [DAU, 新增用户, 收入]")
    period: Literal["day", "week", "month"] = "day"
    agg: Literal["sum", "mean", "last"] = Field("sum", description="how points in one period combine "
                                                                   "(use mean or last for rates)")
    periods: dict[str, list[dict[str, Any]]] | None = Field(
        None, description="rows already rolled up per period (metrics.load `periods` of an aggregated load); "
                          "used instead of `agg` for that period, so each metric keeps its own rule")


class PeriodDelta(BaseModel):
    metric: str
    period: str
    value: float | None
    previous: float | None
    delta: float | None
    pct: float | None = Field(description="percent change vs the previous period; none when either is partial")
    points: int = Field(description="data points (days, for rolled-up periods) in this period")
    complete: bool = Field(description="false for a period the data covers only in part (a week that starts "
                                       "before the first day or ends after the last); `latest` skips it")
    note: str | None = Field(None, description="why the period is partial, or why it is not compared")


class CompareOutput(BaseModel):
    rows: list[PeriodDelta]
    latest: dict[str, PeriodDelta] = Field(description="the last complete period of each metric")


def _grouped(args: CompareInput, metric: str) -> list[tuple[str, float | None, int, str | None]]:
    """(period, value, points, partial-note) per period of one metric, oldest first."""
    if args.periods and args.period in args.periods:
        return [(str(r[args.time]), r.get(metric), int(r.get("days") or 0),
                 None if r.get("complete", True) else str(r.get("partial") or "partial"))
                for r in args.periods[args.period]]
    data = series(args.rows, args.time, metric)
    groups: dict[str, list[float]] = {}
    spans: dict[str, tuple[date, date]] = {}
    for moment, value in data:
        key = period_key(moment, args.period)
        groups.setdefault(key, []).append(value)
        spans.setdefault(key, period_days(moment, args.period))
    keys = sorted(groups)
    usual = statistics.median(len(groups[k]) for k in keys) if keys else 0
    first, last = (data[0][0].date(), data[-1][0].date()) if data else (None, None)
    out: list[tuple[str, float | None, int, str | None]] = []
    for key in keys:
        points = groups[key]
        value = sum(points) if args.agg == "sum" else statistics.fmean(points) if args.agg == "mean" else points[-1]
        note = None
        if args.period != "day" and first and last:
            note = coverage_note(first, last, spans[key])
        elif key in (keys[0], keys[-1]) and len(points) < usual:  # sub-daily points: a day cut short
            note = _("only {count} points, usually {usual:g}").format(count=len(points), usual=usual)
        out.append((key, value, len(points), note))
    return out


@tool("metrics.compare")
async def metrics_compare(args: CompareInput, ctx: ToolContext) -> CompareOutput:
    """Aggregate by day/week/month and compute each period's change against the one before."""
    out: list[PeriodDelta] = []
    latest: dict[str, PeriodDelta] = {}
    for metric in args.values:
        before: tuple[float | None, str | None] | None = None
        for key, value, points, partial in _grouped(args, metric):
            previous, previous_partial = before if before else (None, None)
            value = None if value is None else round(value, 4)
            note = _("partial period: {why}").format(why=partial) if partial else None
            comparable = before is not None and not partial and not previous_partial
            if before is not None and previous_partial and not partial:
                note = _("not compared: the period before is partial ({why})").format(why=previous_partial)
            delta = value - previous if comparable and value is not None and previous is not None else None
            pct = round(delta / previous * 100, 2) if delta is not None and previous else None
            row = PeriodDelta(metric=metric, period=key, value=value, previous=previous,
                              delta=round(delta, 4) if delta is not None else None, pct=pct, points=points,
                              complete=partial is None, note=note)
            out.append(row)
            if partial is None:
                latest[metric] = row
            before = (value, partial)
    return CompareOutput(rows=out, latest=latest)
