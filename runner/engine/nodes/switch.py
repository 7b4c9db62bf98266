"""`switch` steps: the first case whose `if` is true names the next step; else `default`."""

from __future__ import annotations

from typing import Any

from runner.dsl.topology import END
from runner.engine.nodes.base import StepContext, step_kind


@step_kind("switch")
async def run_switch(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    spec = ctx.step.switch
    assert spec is not None
    for case in spec.cases:
        if ctx.render(case.if_, what="switch if"):
            return {"goto": case.goto}
    topo = ctx.run.playbook.topology
    following = topo.routes[ctx.step.id][-1]
    return {"goto": spec.default or following or END}
