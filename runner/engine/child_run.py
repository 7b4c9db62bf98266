"""A sub-playbook run to completion inside its parent's step, and what ends every run: each step reached or
skipped, the outputs evaluated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from runner.config import Project
from runner.dsl import templates
from runner.dsl.spec import Step
from runner.dsl.validate import Playbook
from runner.engine.compile import DURABILITY, run_graph
from runner.engine.gates import NodeFunction, never_reached
from runner.engine.liveness import this_process
from runner.engine.nodes import RunContext, StepContext
from runner.engine.nodes.base import driving
from runner.errors import RunCancelled, RunError, RunTakenOver, TemplateFailed, framed
from runner.i18n import _
from runner.store import checkpointer

CHILD_OUTPUTS = "__outputs__"  # journal step under which a finished sub-playbook's outputs are kept unredacted



def initial_state(project: Project, inputs: dict[str, Any], started: float,
                  bound: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state a run starts from; `run.date` is the day it started in the project's timezone (a sub-playbook
    gets its parent's: on a UTC server in the evening, the local day is already the next one). `bound`: names an
    inline body's templates read besides the usual ones (its item, its `with:` values)."""
    tz = ZoneInfo(project.settings.timezone)
    run: dict[str, Any] = {"date": datetime.fromtimestamp(started, tz).strftime("%Y-%m-%d")}
    if bound:
        run["bound"] = bound
    return {"inputs": inputs, "steps": {}, "visits": {}, "approval": None, "run": run}

def render_outputs(rc: RunContext, final: dict[str, Any]) -> dict[str, Any]:
    """The playbook's `outputs:` from the run's final state; one that cannot be evaluated fails the run, naming
    the output and the expression."""
    context = StepContext(rc, rc.playbook.spec.steps[-1], 0, final).template_context()
    try:
        outputs: dict[str, Any] = templates.render(rc.playbook.spec.output_values, context)
    except templates.TemplateError as exc:
        raise TemplateFailed(framed(exc.where("outputs"), str(exc))) from None
    return outputs


def check_every_step_reached(playbook: Playbook, final: dict[str, Any]) -> None:
    """A run that ended with a step neither run nor skipped as off the path is not done (runner/engine/gates.py
    makes this impossible for a playbook that validates; this says so loudly if it ever is not)."""
    missed = never_reached(playbook.topology.order, final.get("paths") or {}, final.get("steps") or {})
    if missed:
        raise RunError(_("the run ended before step '{name}' was reached or skipped; this is a bug in the runner — "
                         "please report it with the playbook file ({path})").format(
                           name=missed[0], path=playbook.path), step=missed[0])


async def run_child(parent: RunContext, child: Playbook, inputs: dict[str, Any], run_id: str,
                    bound: dict[str, Any] | None = None, *,
                    nodes: Callable[[Step], NodeFunction]) -> tuple[Any, dict[str, float]]:
    """Run a sub-playbook to completion inside the parent's step; returns its outputs and what its LLM calls
    used (the parent's step reports them as its own). `nodes`: the executor's node for a step (it finds its run
    in `current_run()`)."""
    # two equal items of a map are one child run: the second waits for the first and reads its outputs, instead
    # of driving the same run (one checkpoint thread, one journal) at the same time
    lock = parent.extra.setdefault("child_runs", {}).setdefault(run_id, asyncio.Lock())
    async with lock:
        return await _run_child(parent, child, inputs, run_id, bound, nodes)


async def _run_child(parent: RunContext, child: Playbook, inputs: dict[str, Any], run_id: str,
                     bound: dict[str, Any] | None,
                     nodes: Callable[[Step], NodeFunction]) -> tuple[Any, dict[str, float]]:
    existing = parent.store.get_run(run_id)
    if existing is None:
        parent.store.create_run(id=run_id, playbook=child.spec.name, path=str(child.path),
                                source=child.loaded.text, status="running", started_at=time.time(),
                                inputs=inputs, parent=parent.run_id, **this_process())
    elif existing["status"] == "done":  # the journal keeps the outputs as they were; the run row is redacted
        recorded = parent.store.journal_get(run_id, CHILD_OUTPUTS, 0, "outputs")
        return (recorded["value"] if recorded is not None else existing["outputs"] or {}), {}
    else:  # the parent resumed: its sub-playbook goes on, in this process
        parent.store.update_run(run_id, status="running", error=None, ended_at=None, **this_process())
    run = parent.store.get_run(run_id)
    assert run is not None
    rc = RunContext(run_id=run_id, playbook=child, project=parent.project, store=parent.store,
                    llm=parent.llm, hooks=parent.hooks, redact=parent.redact, run_dir=parent.run_dir,
                    started_at=run["started_at"], max_cost=parent.max_cost, spent=parent.spent,
                    tool_fixtures=parent.tool_fixtures, run_child=partial(run_child, nodes=nodes),
                    owner=parent.owner)
    config = {"configurable": {"thread_id": run_id}, "recursion_limit": 10_000}
    state = initial_state(parent.project, inputs, parent.started_at, bound)  # the parent's clock and timezone
    spent_before = parent.spent
    try:
        async with checkpointer(parent.project) as saver:
            graph = run_graph(child, nodes, saver)
            started = bool((await graph.aget_state(config)).values)
            with driving(rc):
                final = await graph.ainvoke(None if started else state, config, durability=DURABILITY)
    except BaseException as exc:  # the child's row ends as its parent's run will: never `running` with no driver
        ended = "cancelled" if isinstance(exc, RunCancelled) and not isinstance(exc, RunTakenOver) else "failed"
        if not isinstance(exc, RunTakenOver):  # taken over: the new owner writes
            parent.store.update_run(run_id, status=ended, ended_at=time.time(),
                                    error=parent.redact(str(exc) or type(exc).__name__))
        raise
    finally:  # what the sub-playbook used is the parent's too (its run row already counts it: RunContext.charge)
        parent.tokens_in += rc.tokens_in
        parent.tokens_out += rc.tokens_out
        parent.spent = rc.spent
    if isinstance(final, dict) and final.get("__interrupt__"):
        raise RunError(_("sub-playbook '{name}' asks for approval; approvals inside sub-playbooks are not "
                         "supported yet — move the approval to the parent").format(name=child.spec.name))
    check_every_step_reached(child, final)
    outputs = render_outputs(rc, final)
    parent.store.journal_put(run_id, CHILD_OUTPUTS, 0, "outputs", {"value": outputs})
    parent.store.update_run(run_id, status="done", outputs=parent.redact.value(outputs), ended_at=time.time())
    return outputs, {"tokens_in": rc.tokens_in, "tokens_out": rc.tokens_out, "cost": rc.spent - spent_before,
                     "llm_calls": rc.llm_calls}
