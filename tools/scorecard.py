"""metrics.scorecard: a campaign's goal attainment, funnel conversion and ROI, computed in code."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool
from tools.metrics import parse_number


class Goal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(description="a column of the table, or 'roi' / 'roas'")
    target: float
    agg: Literal["sum", "mean", "last", "max"] = "sum"
    higher_is_better: bool = True


class ScorecardInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(description="the campaign's metrics, one row per day (metrics.load)")
    goals: list[Goal] = Field(default_factory=list)
    funnel: list[str] = Field(default_factory=list, description="funnel stage columns, top first, e.g. "
                              "[曝光, 点击, 注册, 付费]")
    revenue: str | None = Field(None, description="revenue column (for ROI)")
    cost: str | None = Field(None, description="cost column (for ROI)")


class GoalResult(BaseModel):
    """`title`s are the labels the web page shows for these fields."""

    metric: str = Field(title="指标")
    target: float = Field(title="目标")
    actual: float = Field(title="实际")
    attainment_pct: float = Field(title="达成率（%）", description="actual / target × 100 (target / actual × 100 "
                                                                   "when lower is better)")
    met: bool = Field(title="是否达成")


class Stage(BaseModel):
    stage: str = Field(title="环节")
    total: float = Field(title="合计")
    from_previous_pct: float | None = Field(title="较上一环节（%）", description="conversion from the stage above, %")
    from_top_pct: float | None = Field(title="较首环节（%）", description="conversion from the first stage, %")


class Roi(BaseModel):
    revenue: float = Field(title="收入")
    cost: float = Field(title="成本")
    profit: float = Field(title="利润")
    roi_pct: float | None = Field(title="ROI（%）", description="(revenue − cost) / cost × 100")
    roas: float | None = Field(title="ROAS", description="revenue / cost")


class ScorecardOutput(BaseModel):
    goals: list[GoalResult] = Field(title="目标达成")
    funnel: list[Stage] = Field(title="漏斗")
    roi: Roi | None = Field(title="投入产出")
    days: int = Field(title="天数")
    rules: str = Field(title="计算口径")


def _column(rows: list[dict[str, Any]], name: str, argument: str) -> list[float]:
    if rows and name not in rows[0]:
        raise ToolArgumentError(argument, _("no column '{name}' (columns: {joined})").format(
                                              name=name, joined=', '.join(rows[0])))
    values = (parse_number(row.get(name), _("row {number} column '{name}'").format(number=i + 1, name=name))
              for i, row in enumerate(rows))
    return [v for v in values if v is not None]


def _aggregate(values: list[float], agg: str) -> float:
    if not values:
        return 0.0
    return {"sum": sum(values), "mean": sum(values) / len(values), "last": values[-1], "max": max(values)}[agg]


def _pct(part: float, whole: float) -> float | None:
    return round(part / whole * 100, 2) if whole else None


@tool("metrics.scorecard")
async def metrics_scorecard(args: ScorecardInput, ctx: ToolContext) -> ScorecardOutput:
    """Goal attainment, funnel conversion and ROI of a campaign, from its metrics table."""
    roi = None
    if args.revenue and args.cost:
        revenue = sum(_column(args.rows, args.revenue, "revenue"))
        cost = sum(_column(args.rows, args.cost, "cost"))
        roi = Roi(revenue=round(revenue, 2), cost=round(cost, 2), profit=round(revenue - cost, 2),
                  roi_pct=_pct(revenue - cost, cost), roas=round(revenue / cost, 2) if cost else None)
    goals = []
    for goal in args.goals:
        if goal.metric in ("roi", "roas"):
            if roi is None:
                raise ToolArgumentError("goals", _("goal '{metric}' needs the revenue and cost columns").format(
                                                     metric=goal.metric))
            actual = (roi.roi_pct if goal.metric == "roi" else roi.roas) or 0.0
        else:
            actual = _aggregate(_column(args.rows, goal.metric, "goals"), goal.agg)
        ratio = actual / goal.target if goal.higher_is_better else (goal.target / actual if actual else 0.0)
        goals.append(GoalResult(metric=goal.metric, target=goal.target, actual=round(actual, 2),
                                attainment_pct=round(ratio * 100, 2), met=ratio >= 1))
    stages: list[Stage] = []
    for name in args.funnel:
        total = sum(_column(args.rows, name, "funnel"))
        stages.append(Stage(stage=name, total=round(total, 2),
                            from_previous_pct=_pct(total, stages[-1].total) if stages else None,
                            from_top_pct=_pct(total, stages[0].total) if stages else None))
    rules = ("达成率 = 实际 / 目标 × 100（越低越好的指标取倒数），实际值按目标的 agg 汇总全部行；"
             "转化率 = 本环节总数 / 上一环节（或第一环节）总数 × 100；ROI = (收入 − 成本) / 成本 × 100；"
             "ROAS = 收入 / 成本")
    return ScorecardOutput(goals=goals, funnel=stages, roi=roi, days=len(args.rows), rules=rules)
