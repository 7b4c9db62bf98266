"""`approval` steps: interrupt with a typed payload; resume with approve / reject / edits."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from runner.dsl import templates
from runner.engine.approvals import EditError, apply_edits, diff, sources_of
from runner.engine.nodes.base import StepContext, step_kind
from runner.errors import RunError
from runner.i18n import _


def draft_source(ctx: StepContext) -> str | None:
    """The typed llm step whose output the draft is, when `show` is exactly `${{ steps.X.output }}`."""
    spec = ctx.step.approval
    assert spec is not None
    expr = templates.lone_expression(spec.show) if isinstance(spec.show, str) else None
    parts = expr.split(".") if expr else []
    return parts[1] if len(parts) == 3 and parts[0] == "steps" and parts[2] == "output" else None


def draft_model(ctx: StepContext) -> type[BaseModel] | None:
    """The schema of the draft (as a model) when it is the output of a typed llm step."""
    source = draft_source(ctx)
    return ctx.run.playbook.output_models.get(source) if source else None


@step_kind("approval")
async def run_approval(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    from langgraph.types import interrupt

    spec = ctx.step.approval
    assert spec is not None
    draft = ctx.render(spec.show, what="approval.show")
    try:
        sources = sources_of(ctx.render(spec.sources, what="approval.sources")) if spec.sources is not None else []
    except ValueError as exc:
        raise RunError(str(exc), step=ctx.step.id) from None
    model = draft_model(ctx)
    payload = {
        "step": ctx.step.id, "visit": ctx.visit,
        "title": ctx.render(spec.title, what="approval.title"),
        "instructions": ctx.render(spec.instructions, what="approval.instructions"),
        "draft": draft, "editable": spec.editable,
        "sources": sources,  # passages the draft may cite: shown beside the values that name them
        # the JSON Schema the step declared: bounds, enums and labels for the approval form (and the checks)
        "schema": ctx.run.playbook.output_schemas.get(source) if model is not None and (source := draft_source(ctx))
        else None,
        "can_reject_to": spec.on_reject,
        "deadline": time.time() + spec.timeout if spec.timeout else None,
        "on_timeout": spec.on_timeout,
    }
    # a decision recorded for this visit (claimed by `approve`, the page or a card, maybe by a process that
    # died since) is the one applied; only without one does the run stop and ask
    recorded = ctx.run.store.decision(ctx.run.run_id, ctx.step.id, ctx.visit)
    decision = recorded if recorded is not None else interrupt(payload)
    if not isinstance(decision, dict) or decision.get("action") not in ("approve", "reject"):
        raise RunError(_("invalid approval decision {decision!r}").format(decision=decision), step=ctx.step.id)
    try:
        final = apply_edits(draft, decision.get("edits") or {}, spec.editable, model)
    except EditError as exc:
        raise RunError(str(exc), step=ctx.step.id) from None
    changes = diff(draft, final)

    async def record() -> bool:
        ctx.run.store.record_approval(run_id=ctx.run.run_id, step=ctx.step.id, visit=ctx.visit,
                                      action=decision["action"], by=decision.get("by") or "unknown",
                                      at=decision.get("at") or time.time(),
                                      comment=decision.get("comment"), edits=decision.get("edits"),
                                      diff=changes)
        ctx.run.hooks.on_approval(run_id=ctx.run.run_id, step=ctx.step.id, visit=ctx.visit,
                                  action=decision["action"], by=decision.get("by"), comment=decision.get("comment"),
                                  diff=changes)
        return True

    await ctx.once("decision", record)
    if decision["action"] == "reject" and not spec.on_reject:
        raise RunError(_("rejected by {by}: {comment}").format(
                           by=decision.get('by'), comment=decision.get("comment") or _("no comment")),
                       step=ctx.step.id)
    return {"draft": final, "decision": {**decision, "diff": changes}}
