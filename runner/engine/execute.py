"""Runs a compiled graph: checkpointer, journal, hooks, approvals, resume, cancellation, run folder."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from runner import atomic
from runner.config import Project
from runner.dsl import templates
from runner.dsl.references import APPROVAL_FIELDS
from runner.dsl.spec import Step
from runner.dsl.validate import Playbook, load_and_validate
from runner.engine.child_run import check_every_step_reached, initial_state, render_outputs, run_child
from runner.engine.compile import DURABILITY, run_graph
from runner.engine.events import EventsFile, HookList, Hooks, Redactor
from runner.engine.heartbeat import Heartbeat
from runner.engine.liveness import HOST, run_alive, this_process
from runner.engine.nodes import EXECUTORS, RunContext, StepContext, executor_of
from runner.engine.nodes.base import MapDistributor, current_run, driving, skipped_result
from runner.engine.nodes.map import run_map
from runner.engine.nodes.on_error import error_record, fallback, problems_of, tolerable
from runner.engine.step_log import StepLog
from runner.errors import CompileError, DecisionTaken, NoSuchRun, RunCancelled, RunError, RunTakenOver, interrupted
from runner.i18n import N_, _
from runner.models.llm import LlmClient
from runner.registry import ToolFixtures, close_resources, run_started
from runner.store import checkpointer, open_store, store_lost
from runner.wording import status as status_word

DEFAULT_MAX_VISITS = 100


@dataclass
class RunOutcome:
    run_id: str
    status: str  # done | waiting | failed | cancelled
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    pending: dict[str, Any] | None = None
    run_dir: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)  # errors the run went on past (on_error)
    resumable: bool = True  # whether `playbook resume` can get past the failure (not a broken `${{ }}`)


def new_run_id(name: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name[:24]}-{uuid.uuid4().hex[:6]}"


def _result(step: Step, output: Any, status: str = "done", **extra: Any) -> dict[str, Any]:
    """What the state keeps of a step: its output and per-kind fields (templates see the output's fields lifted
    beside them: runner/engine/nodes/base.py StepsView)."""
    return {"output": output, "status": status, **extra}


class StepNode:
    """One graph node. A callable object, not a closure: LangGraph walks a node function's closure
    looking for subgraphs, which cost ~1.5 ms per step on every compile. It holds no run: the graph is
    shared by every run of the playbook in the process, and the node finds its run in `current_run()`."""

    def __init__(self, step: Step) -> None:
        executor = executor_of(step.kind)
        if executor is None:  # a kind the DSL accepts with no executor: refused before anything runs
            raise CompileError(_("step '{step}': no executor is registered for {kind} steps (registered: "
                                 "{kinds})").format(step=step.id, kind=step.kind, kinds=", ".join(sorted(EXECUTORS))))
        self.executor = executor
        self.step = step

    async def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        rc, step = current_run(), self.step
        visit = (state.get("visits") or {}).get(step.id, 0) + 1
        limit = step.max_visits or DEFAULT_MAX_VISITS
        if visit > limit:
            raise RunError(_("visited more than max_visits={limit} times; the loop did not end").format(
                               limit=limit),
                           step=step.id)
        rc.check_cancel(step.id)
        ctx = StepContext(rc, step, visit, state)
        started = time.monotonic()
        rc.hooks.on_step_start(run_id=rc.run_id, step=step.id, kind=step.kind, visit=visit)
        update: dict[str, Any] = {"visits": {step.id: visit}}
        try:
            result = await self._run(ctx, update)
        except BaseException as exc:
            if not tolerable(step, exc):
                raise
            record = error_record(exc)
            lists = {"items": [], "errors": record.pop("errors", [])} if step.map is not None else {}
            result = _result(step, fallback(step), "failed", error=record, **lists)
        result["visits"] = visit
        usage = {k: round(v, 6) for k, v in ctx.usage.items()}  # this step's LLM calls, tokens, cost
        rc.hooks.on_step_end(run_id=rc.run_id, step=step.id, visit=visit, status=result["status"],
                             seconds=round(time.monotonic() - started, 3), output=result["output"],
                             **({"items": result.get("items", [])} if step.map is not None else {}),
                             **{k: result[k] for k in ("error", "errors") if result.get(k)}, **usage)
        if step.switch is None:  # a switch's output is read by its gate, and is small anyway
            result["output"] = await rc.spill.keep(step.id, visit, result["output"])
        update["steps"] = {step.id: result}
        return update

    async def _run(self, ctx: StepContext, update: dict[str, Any]) -> dict[str, Any]:
        step = self.step
        if step.when is not None and not ctx.render(step.when, what="when"):
            result = skipped_result(step)
        elif step.map is not None:
            outputs, items, errors = await run_map(ctx)
            result = _result(step, outputs, items=items, errors=errors)
        elif step.described.pauses:
            output = await self.executor(ctx, None, with_item=False)
            decision = output["decision"]
            status = "rejected" if decision["action"] == "reject" else "approved"
            result = _result(step, output["draft"], status, decision=decision)
            update["approval"] = {**{k: decision.get(k) for k in APPROVAL_FIELDS}, "step": step.id}
        else:
            result = _result(step, await self.executor(ctx, None, with_item=False))
        return result


_heap_settled = False


def settle_heap() -> None:
    """Move what is alive as a run starts — the imported libraries (langgraph, pydantic, the SDK, litellm: about
    450,000 objects), caches, what earlier runs keep — out of the cyclic garbage collector's sight (`gc.freeze`), so
    its collections during the run scan the run's own objects, not the libraries' again and again: 20–25 % less CPU
    per LLM call in a map (benchmarks/README.md). The first time in a process nothing is collected first (a full
    collection there costs 0.4 s, and a fresh process has little garbage); later, only what is new since the last
    freeze is collected, which is cheap, so an earlier run's garbage is not kept."""
    global _heap_settled
    if _heap_settled:
        gc.collect()
    gc.freeze()
    _heap_settled = True


class Runner:
    """Starts and resumes runs of one project. All I/O of a run goes through here."""

    def __init__(self, project: Project, *, hooks: list[Hooks] | None = None,
                 tool_fixtures: ToolFixtures | None = None, distribute: MapDistributor | None = None,
                 hand_on: Callable[[str], bool] | None = None) -> None:
        self.project = project
        # a team worker's: hands a run that failed on a database outage to the workers again (True: handed on)
        self.hand_on = hand_on
        self.hooks = list(hooks or [])
        self.tool_fixtures = tool_fixtures
        self.distribute = distribute  # a team worker's: large maps run in chunks across workers
        self.store = open_store(project)
        self.llm = LlmClient(project, self.store)
        # run id → (its source, the playbook validated from it) between claim_resume and the resume it precedes,
        # so continuing a run validates it once (an eval's approvals validated every playbook twice each)
        self._claimed: dict[str, tuple[str, Playbook]] = {}

    def close(self) -> None:
        self.store.close()

    async def flush_hooks(self) -> None:
        """Wait for what the hooks set off (cards and notices being sent) before the process goes."""
        for hook in self.hooks:
            if (flush := getattr(hook, "flush", None)) is not None:  # hooks may be any object with on_* methods
                await flush()

    def _context(self, run: dict[str, Any], playbook: Playbook) -> RunContext:
        run_dir = self.project.run_dir(run["id"].split(".")[0])
        redact = Redactor(self.project.secret_values() +
                          [os.environ.get(n, "") for n in playbook.spec.secrets])
        hooks = HookList([EventsFile(run_dir / "events.jsonl", redact), StepLog(self.store), *self.hooks], redact)
        max_cost = run["max_cost"] if run["max_cost"] is not None else playbook.spec.limits.max_cost
        return RunContext(run_id=run["id"], playbook=playbook, project=self.project, store=self.store,
                          llm=self.llm, hooks=hooks, redact=redact, run_dir=run_dir,
                          started_at=run["started_at"], max_cost=max_cost, spent=run["cost"] or 0.0,
                          tokens_in=run["tokens_in"] or 0, tokens_out=run["tokens_out"] or 0,
                          tool_fixtures=self.tool_fixtures, run_child=partial(run_child, nodes=StepNode),
                          distribute=self.distribute,
                          shared_budget=self.distribute is not None)

    def context(self, run: dict[str, Any]) -> RunContext:
        """The services of an existing run, for work done on it outside its graph (a map chunk on a worker)."""
        return self._context(run, load_and_validate(run["path"], run["source"]))

    async def begin(self, run_id: str) -> RunOutcome:
        """Drive a run recorded as queued (runner/team/queue.py) that this process has just claimed."""
        run = self.store.get_run(run_id)
        if run is None:
            raise NoSuchRun(run_id, self.store.location)
        playbook = load_and_validate(run["path"], run["source"])
        self.llm.preload_for(playbook.model_aliases())
        rc = self._context(run, playbook)
        rc.hooks.on_run_start(run_id=run_id, playbook=playbook.spec.name, inputs=run["inputs"])
        return await self._drive(rc, None, initial_state(self.project, run["inputs"], run["started_at"]))

    async def start(self, playbook: Playbook, inputs: dict[str, Any], *, run_id: str | None = None,
                    max_cost: float | None = None) -> RunOutcome:
        run_id = run_id or new_run_id(playbook.spec.name)
        now = time.time()
        self.store.create_run(id=run_id, playbook=playbook.spec.name, path=str(playbook.path),
                              source=playbook.loaded.text, status="running", started_at=now,
                              inputs=inputs, max_cost=max_cost, **this_process())
        run = self.store.get_run(run_id)
        assert run is not None
        self.llm.preload_for(playbook.model_aliases())  # litellm loads while the first steps run
        rc = self._context(run, playbook)
        rc.new_run = True
        rc.hooks.on_run_start(run_id=run_id, playbook=playbook.spec.name, inputs=inputs)
        return await self._drive(rc, None, initial_state(self.project, inputs, now))

    def claim(self, run_id: str, decision: dict[str, Any]) -> None:
        """Record `decision` for the approval the run waits at, and move the run on, atomically; raises
        DecisionTaken when another decision got there first (two `approve`s at once, a stale page)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise NoSuchRun(run_id, self.store.location)
        pending = run["pending"] or {}
        earlier = self.store.claim_decision(run["id"], str(pending.get("step")), int(pending.get("visit") or 0),
                                            decision, **this_process())
        if earlier is not None:
            raise DecisionTaken(run["id"], str(pending.get("step")), earlier)

    def claim_resume(self, run_id: str, *, decision: dict[str, Any] | None = None,
                     max_cost: float | None = None) -> dict[str, Any]:
        """Check that the run can go on (with `decision`, when it waits at an approval) and make this process
        its owner, atomically: the decision is recorded once, two resumes take it over once. Returns the run."""
        run = self.store.get_run(run_id)
        if run is None:
            raise NoSuchRun(run_id, self.store.location)
        if run["status"] in ("done", "cancelled"):
            raise RunError(_("run '{id}' is {status}; nothing to resume").format(
                               id=run['id'], status=status_word(run['status'])))
        if decision is None and run["status"] == "waiting":
            raise RunError(_("run '{id}' is waiting for approval; use `playbook approve` or `playbook reject`").format(
                               id=run['id']))
        # a decision for a run another decision already moved on: say that, not that it is running
        if decision is not None and run["status"] != "waiting":
            raise RunError(_("run '{id}' is {status}, not waiting for approval").format(
                               id=run['id'], status=status_word(run['status'])))
        # this process counts too: a run it drives right now (a server's background run) is not resumed twice
        if run["status"] in ("running", "queued") and (run["status"] == "queued" or run_alive(run)):
            if run["status"] == "queued":
                where = _("the queue, waiting for a worker")
            elif run.get("host") not in (None, HOST):
                where = _("process {pid} on {host}").format(pid=run["pid"], host=run["host"])
            else:
                where = _("process {pid}").format(pid=run["pid"])
            raise RunError(_("run '{id}' is still running in {where}; wait for it or stop it with `playbook "
                             "cancel`").format(id=run["id"], where=where))
        checked = load_and_validate(run["path"], run["source"])  # a source this version cannot run fails here
        if max_cost is not None:
            self.store.update_run(run["id"], max_cost=max_cost)
            run["max_cost"] = max_cost
        if decision is not None:
            self.claim(run["id"], decision)  # the one decision applied; the run is now running
        elif not self.store.take_over(run, **this_process()):
            raise RunError(_("run '{id}' was resumed by another process just now; nothing was started here").format(
                               id=run['id']))
        self._claimed[run["id"]] = (run["source"], checked)
        if len(self._claimed) > 32:  # claims handed to workers are never resumed here (a server's runner lives long)
            self._claimed.pop(next(iter(self._claimed)))
        return run

    async def resume(self, run_id: str, *, decision: dict[str, Any] | None = None,
                     max_cost: float | None = None, claimed: bool = False) -> RunOutcome:
        """Continue a run. `claimed`: this process has already made itself the owner (claim_resume, a worker's
        claim of a queued run), so the checks are not made again."""
        if not claimed:
            run = self.claim_resume(run_id, decision=decision, max_cost=max_cost)
        elif (found := self.store.get_run(run_id)) is None:
            raise NoSuchRun(run_id, self.store.location)
        else:
            run = found
            if max_cost is not None:
                self.store.update_run(run["id"], max_cost=max_cost)
                run["max_cost"] = max_cost
        source, playbook = self._claimed.pop(run["id"], (None, None))
        if playbook is None or source != run["source"]:
            playbook = load_and_validate(run["path"], run["source"])
        self.store.update_run(run["id"], status="running", error=None, pending=None, ended_at=None,
                              **this_process())
        self.llm.preload_for(playbook.model_aliases())
        rc = self._context(run, playbook)
        rc.hooks.on_run_start(run_id=run["id"], playbook=playbook.spec.name, inputs=run["inputs"], resumed=True)
        return await self._drive(rc, decision, initial_state(self.project, run["inputs"], run["started_at"]))

    async def _drive(self, rc: RunContext, decision: dict[str, Any] | None, fresh: dict[str, Any]) -> RunOutcome:
        """Run or continue the graph (with the decision for the approval it waits at). With no checkpoint yet (a
        start, or a run killed before its first one) it starts from `fresh`: the journal answers every call that
        finished before, so nothing repeats."""
        config = {"configurable": {"thread_id": rc.run_id}, "recursion_limit": 10_000}
        outcome = RunOutcome(rc.run_id, "failed", run_dir=str(rc.run_dir))
        me = this_process()
        rc.owner = (me["pid"], me["host"])  # its steps stop should another process take the run over
        with Heartbeat(self.store, rc.run_id, stuck_after=self.project.settings.queue.stuck_after):
            try:
                await self._drive_graph(rc, decision, fresh, config, outcome)
            except RunTakenOver as exc:  # the new owner writes the record now: this process writes nothing
                outcome.status, outcome.error = "moved", str(exc)
                return outcome
        if outcome.status == "failed" and self.hand_on is not None and (outcome.error or "").startswith(
                _(DATABASE_LOST)) and self.hand_on(rc.run_id):
            outcome.status = "queued"  # another drive continues it: no end recorded, no failure notice sent
            return outcome
        return self._finish(rc, outcome)

    async def _drive_graph(self, rc: RunContext, decision: dict[str, Any] | None, fresh: dict[str, Any],
                           config: dict[str, Any], outcome: RunOutcome) -> None:
        async with checkpointer(self.project) as saver:
            graph = run_graph(rc.playbook, StepNode, saver)
            if "." not in rc.run_id:
                settle_heap()
            run_started()
            final: Any = None
            try:
                snapshot = await graph.aget_state(config)
                if snapshot.values and not snapshot.values.get("paths"):
                    # checkpointed before any step finished, or by a version without links: start again from the
                    # journal, which answers every call (and decision) recorded, so nothing repeats
                    await saver.adelete_thread(rc.run_id)
                    snapshot = await graph.aget_state(config)
                graph_input = _resume_command(rc, snapshot, decision) if snapshot.values else fresh
                with driving(rc):
                    final = await graph.ainvoke(graph_input, config, durability=DURABILITY)
                interrupts = final.get("__interrupt__") if isinstance(final, dict) else None
                if interrupts:
                    outcome.status, outcome.pending = "waiting", interrupts[0].value
                else:  # "done" only once every output evaluated: a run never ends done over a broken output
                    check_every_step_reached(rc.playbook, final)
                    outcome.outputs = self._outputs(rc, final)
                    outcome.status = "done"
            except asyncio.CancelledError:  # Ctrl-C, a stop signal, a server shutting down
                outcome.error = interrupted(rc.run_id.split(".")[0])
                self._finish(rc, outcome)
                raise
            except RunTakenOver:
                raise
            except RunCancelled as exc:
                outcome.status, outcome.error = "cancelled", str(exc)
            except RunError as exc:
                outcome.error, outcome.resumable = str(exc), exc.resumable
            except templates.TemplateError as exc:
                outcome.error, outcome.resumable = str(exc), False
            except Exception as exc:  # a bug or an unexpected library error: keep the run resumable
                outcome.error = _unexpected(exc, rc.run_id.split(".")[0])
            finally:
                await close_resources()
            # from the state in hand when the graph stopped; read back from the checkpoint only after an error (reading
            # it back holds a second copy of every step's output: 200,000 rows twice)
            outcome.problems = problems_of(final.get("steps") or {}) if isinstance(final, dict) \
                else await _problems(graph, config)

    def _outputs(self, rc: RunContext, final: dict[str, Any]) -> dict[str, Any]:
        return render_outputs(rc, final)

    def _finish(self, rc: RunContext, outcome: RunOutcome) -> RunOutcome:
        self.store.flush()  # usage and cache writes still queued in this loop turn
        # what leaves the process — the run row every page, API and `runs show` read, the console — is scrubbed
        error = rc.redact(outcome.error) if outcome.error else None
        outcome.error = error
        outcome.problems = rc.redact.value(outcome.problems)
        outcome.outputs = rc.redact.value(outcome.outputs)
        outcome.pending = rc.redact.value(outcome.pending)
        ended = None if outcome.status == "waiting" else time.time()
        self.store.update_run(rc.run_id, status=outcome.status, outputs=outcome.outputs or None,
                              error=error, pending=outcome.pending, ended_at=ended,
                              problems=outcome.problems or None)
        run = self.store.get_run(rc.run_id) or {}
        outcome.tokens_in, outcome.tokens_out = run.get("tokens_in", 0), run.get("tokens_out", 0)
        outcome.cost = run.get("cost", 0.0)
        if outcome.pending:
            rc.hooks.on_approval(run_id=rc.run_id, step=outcome.pending.get("step"), action="requested",
                                 title=outcome.pending.get("title"))
        rc.hooks.on_run_end(run_id=rc.run_id, status=outcome.status, error=error, problems=outcome.problems,
                            tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out,
                            cost=round(outcome.cost, 6))
        if "." not in rc.run_id:
            self._write_summary(rc, run)
        return outcome

    def _write_summary(self, rc: RunContext, run: dict[str, Any]) -> None:
        summary = {k: v for k, v in run.items() if k not in ("source", "cancel_requested")}
        summary["approvals"] = self.store.approvals(rc.run_id)
        summary["run_dir"] = str(rc.run_dir)
        rc.run_dir.mkdir(parents=True, exist_ok=True)
        text = rc.redact(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
        atomic.write_text(rc.run_dir / "run.json", text + "\n")

    def cancel(self, run_id: str) -> str:
        run = self.store.get_run(run_id)
        if run is None:
            raise NoSuchRun(run_id, self.store.location)
        if run["status"] in ("waiting", "failed", "queued"):
            self.store.update_run(run["id"], status="cancelled", ended_at=time.time(), pending=None)
            return "cancelled"
        if run["status"] == "running":
            self.store.update_run(run["id"], cancel_requested=1)
            return "cancel requested"
        return str(run["status"])


def _resume_command(rc: RunContext, snapshot: Any, decision: dict[str, Any] | None) -> Any:
    """What continues a checkpointed graph: nothing, or the decision for the approval it waits at. Approvals that
    ran in parallel wait together: each gets the decision recorded for it (runner/engine/nodes/approval.py reads
    the same record), and one without a decision yet asks again."""
    if decision is None:
        return None
    from langgraph.types import Command

    waiting = [i for task in snapshot.tasks for i in task.interrupts]
    if len(waiting) <= 1:
        return Command(resume=decision)
    answers = {}
    for pending in waiting:
        value = pending.value if isinstance(pending.value, dict) else {}
        recorded = rc.store.decision(rc.run_id, str(value.get("step")), int(value.get("visit") or 0))
        if recorded is not None:
            answers[pending.id] = recorded
    return Command(resume=answers or {waiting[0].id: decision})


DATABASE_LOST = N_("the database stopped answering during the run")


def _unexpected(exc: Exception, run_id: str) -> str:
    """An error no step expected, said as what happened: the database going away mid-run (a Postgres restart:
    psycopg's connection errors) is not a bug, and a resume continues once it is back."""
    if store_lost(exc):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection lost"
        return _("{lost} ({reason}); once it is back, `playbook resume {run_id}` continues from the last finished "
                 "step").format(lost=_(DATABASE_LOST), reason=reason, run_id=run_id)
    return f"internal error: {type(exc).__name__}: {exc}"


async def _problems(graph: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    """What the run went on past so far (on_error), from its last checkpoint — so a failed or waiting run,
    and a resumed one, report them too."""
    try:
        snapshot = await graph.aget_state(config)
    except Exception:  # no checkpoint yet: nothing ran
        return []
    values = getattr(snapshot, "values", None) or {}
    return problems_of(values.get("steps") or {})
