"""`template` steps: a value computed from expressions — merging branches, reshaping an output, a text put
together — with no model or tool call (what Dify's template-transform, variable-aggregator and variable-assigner
nodes do)."""

from __future__ import annotations

from typing import Any

from runner.engine.nodes.base import StepContext, step_kind


@step_kind("template")
async def run_template(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    return ctx.render(ctx.step.template, item, with_item=with_item, what="template")
