"""`playbook` steps: run another playbook file inline, as a child run with its own journal; an inline map body
(`map:` with `steps:`) runs the same way, its steps a sub-playbook written in place."""

from __future__ import annotations

from typing import Any

from runner.dsl.inline_body import body_result
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
    outputs, usage = await ctx.run.run_child(ctx.run, child, inputs, f"{ctx.run.run_id}.{suffix}", None)
    _count(ctx, usage)
    return outputs


@step_kind("steps")
async def run_inline_body(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    """An inline map body: its steps run for one item as a sub-playbook of this run — the playbook's inputs, the
    item and the `with:` values bound by name."""
    body = ctx.run.playbook.children.get(ctx.step.id)
    if body is None or ctx.run.run_child is None:
        raise RunError(_("this run was set up without a way to run sub-playbooks"), step=ctx.step.id)
    bound = {**ctx.render(ctx.step.with_ or {}, item, with_item=with_item, what="with"), ctx.step.item_name: item}
    suffix = f"{ctx.step.id}-{ctx.visit}-{digest(item)[:8]}"
    outputs, usage = await ctx.run.run_child(ctx.run, body, dict(ctx.state.get("inputs") or {}),
                                             f"{ctx.run.run_id}.{suffix}", bound)
    _count(ctx, usage)
    return body_result(ctx.step, outputs)


def _count(ctx: StepContext, usage: dict[str, float]) -> None:
    for key, used in usage.items():  # the child's calls are this step's: its line and page show them
        ctx.usage[key] = ctx.usage.get(key, 0) + used
