"""`playbook` steps: run another playbook file inline, as a child run with its own journal."""

from __future__ import annotations

from typing import Any

from runner.dsl.inputs import resolve_inputs
from runner.engine.nodes.base import StepContext, digest, step_kind
from runner.errors import RunError
from runner.i18n import _


@step_kind("playbook")
async def run_playbook(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    child = ctx.run.playbook.children.get(ctx.step.id)
    if child is None:
        raise RunError(_("sub-playbook was not validated"), step=ctx.step.id)
    if ctx.run.run_child is None:
        raise RunError(_("this run was set up without a way to run sub-playbooks"), step=ctx.step.id)
    given = ctx.render(ctx.step.with_ or {}, item, with_item=with_item, what="with")
    inputs = resolve_inputs(child.spec, given, file=str(child.path), base_dir=child.path.parent)
    suffix = f"{ctx.step.id}-{ctx.visit}" + (f"-{digest(item)[:8]}" if with_item else "")
    outputs, usage = await ctx.run.run_child(ctx.run, child, inputs, f"{ctx.run.run_id}.{suffix}")
    for key, used in usage.items():  # the child's calls are this step's: its line and page show them
        ctx.usage[key] = ctx.usage.get(key, 0) + used
    return outputs
