"""What every step executor gets: the run's shared services and the step's own view of the state."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.config import LOCAL, Project
from runner.dsl import templates
from runner.dsl.kinds import KINDS
from runner.dsl.labels import expression_schema
from runner.dsl.references import APPROVAL_FIELDS
from runner.dsl.spec import Retry, Step
from runner.dsl.validate import Playbook
from runner.engine.events import HookList, Redactor
from runner.engine.spill import Spill
from runner.errors import CostLimitReached, RunCancelled, RunTakenOver, TemplateFailed, framed
from runner.i18n import _
from runner.models.llm import LlmClient, LlmRequest, LlmResult, message_text
from runner.models.local_model import thread_count
from runner.registry import ToolContext, ToolFixtures
from runner.store import Store
from runner.wording import number

# (parent run, sub-playbook, its inputs, child run id, names bound for an inline body) → (the sub-playbook's outputs,
# what its LLM calls used)
ChildRunner = Callable[["RunContext", Playbook, dict[str, Any], str, dict[str, Any] | None],
                       Awaitable[tuple[Any, dict[str, float]]]]
# (the map step, its items) → once every unit is journaled; a team server's workers share the work
MapDistributor = Callable[["StepContext", list[Any]], Awaitable[None]]


@dataclass
class RunContext:
    """Services shared by all steps of one run (and its sub-playbooks)."""

    run_id: str
    playbook: Playbook
    project: Project
    store: Store
    llm: LlmClient
    hooks: HookList
    redact: Redactor
    run_dir: Path
    started_at: float
    max_cost: float | None = None
    spent: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    llm_calls: int = 0
    _cancel_checked: float = 0.0
    shared_budget: bool = False  # other processes spend on this run too (a distributed map): read the total
    _budget_checked: float = 0.0
    tool_fixtures: ToolFixtures | None = None  # evals answer or redirect tool calls
    # runs a sub-playbook to completion (the executor's); given here so that nodes never import the executor
    run_child: ChildRunner | None = None
    distribute: MapDistributor | None = None  # a team server's runs: large maps in chunks across workers
    owner: tuple[int, str | None] | None = None  # the driving process (pid, host); chunk runners elsewhere: None
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def spill(self) -> Spill:
        """Where this run's big step outputs are kept (outside its state)."""
        return Spill(self.run_dir, self.run_id)

    # per (step, visit) whose journal was empty when this process first reached it: the keys it wrote since.
    # A key not among them cannot be journaled (one process drives a run), so it skips the lookup; None: look up.
    journal_fresh: dict[tuple[str, int], set[str] | None] = field(default_factory=dict)
    # started by this process just now: every journal is empty until it writes it (no query per step to learn so)
    new_run: bool = False
    # per (step, visit): its journal read in one query (a distributed map's gathering pass, after other workers
    # journaled its units); a key missing here is looked up on its own
    journal_read: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def charge(self, step: str, result: LlmResult, seconds: float, prompt: str = "") -> None:
        """Account one LLM call. The budget is checked before the next call, not here, so the reply
        that crossed `max_cost` is still journaled and never paid for twice. The prompt goes to the
        events (shortened and redacted there) so a run's page can show what a step was asked."""
        if result.cached:
            self.hooks.on_llm_call(run_id=self.run_id, step=step, model=result.model, cached=True, tokens_in=0,
                                   tokens_out=0, cost=0.0, seconds=round(seconds, 3), prompt=prompt)
            return
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        self.llm_calls += result.calls
        self.spent += result.cost
        # committed with the journal entry of this reply (same loop turn): one commit for both. A sub-playbook's
        # call counts in every run above it at once, so a parent killed or failed inside it still shows its tokens
        for run_id in with_ancestors(self.run_id):
            self.store.queue_usage(run_id, result.tokens_in, result.tokens_out, result.cost)
        self.hooks.on_llm_call(run_id=self.run_id, step=step, model=result.model, cached=False, calls=result.calls,
                               tokens_in=result.tokens_in, tokens_out=result.tokens_out,
                               cost=round(result.cost, 6), seconds=round(seconds, 3), prompt=prompt)

    def check_budget(self, step: str) -> None:
        # other workers' spending is read at most every 0.1 s: the limit is overshot by what is in flight, plus
        # what all workers finish within 0.1 s
        if self.max_cost is not None and self.shared_budget and time.monotonic() - self._budget_checked >= 0.1:
            self._budget_checked = time.monotonic()
            self.spent = max(self.spent, self.store.run_cost(self.run_id.split(".")[0]))
        if self.max_cost is not None and self.spent > self.max_cost:
            currency = self.project.settings.currency
            raise CostLimitReached(_("cost limit reached: {spent:.4f} {currency} > max_cost {max_cost} {currency}; "
                                     "raise it and resume with `playbook resume {run_id} --max-cost N`").format(
                                       spent=self.spent, currency=currency, max_cost=self.max_cost,
                                       run_id=self.run_id), step=step)

    def check_cancel(self, step: str, every: float = 0.5) -> None:
        now = time.monotonic()
        if now - self._cancel_checked < every:
            return
        self._cancel_checked = now
        cancel, pid, host = self.store.run_control(self.run_id.split(".")[0])
        if self.owner is not None and (pid, host) != self.owner:
            raise RunTakenOver(_("another process took this run over while this one made no progress"), step=step)
        if cancel:
            raise RunCancelled(_("cancelled on request"), step=step)


# the run whose graph is being driven: a compiled graph is shared by every run of its playbook in a process
# (runner/engine/compile.py run_graph), so its nodes find their run here, not in themselves. Each run sets it in
# its own task (LangGraph's node tasks copy it), a sub-playbook for the length of its graph.
_current_run: contextvars.ContextVar[RunContext] = contextvars.ContextVar("current_run")


def current_run() -> RunContext:
    return _current_run.get()


@contextlib.contextmanager
def driving(rc: RunContext) -> Iterator[None]:
    """`rc` is the current run while its graph is driven."""
    token = _current_run.set(rc)
    try:
        yield
    finally:
        _current_run.reset(token)


@dataclass
class StepContext:
    run: RunContext
    step: Step
    visit: int
    state: dict[str, Any]
    usage: dict[str, float] = field(default_factory=lambda: {"tokens_in": 0, "tokens_out": 0, "cost": 0.0,
                                                             "llm_calls": 0, "cached": 0})

    @functools.cached_property
    def steps(self) -> StepsView:
        """`steps` as this step's templates see it — built once per step, not once per map item."""
        return StepsView(self.run.playbook, self.state.get("steps") or {}, self.run.spill)

    def template_context(self, item: Any = None, *, with_item: bool = False) -> dict[str, Any]:
        spec = self.run.playbook.spec
        context: dict[str, Any] = {
            "inputs": self.state.get("inputs", {}),
            "steps": self.steps,
            "run": {"id": self.run.run_id, "started_at": self.run.started_at,
                    "date": self.state.get("run", {}).get("date"), "dir": str(self.run.run_dir),
                    "playbook": spec.name, "timezone": self.run.project.settings.timezone},
            "env": {name: os.environ.get(name, "") for name in spec.env},
            "secrets": {name: os.environ.get(name, "") for name in spec.secrets},
            # every field validate lets a template read, before any approval too (a run saved before a field was
            # added still has them all)
            "approval": {**dict.fromkeys(APPROVAL_FIELDS), "comment": "", **(self.state.get("approval") or {})},
        }
        context.update(self.state.get("run", {}).get("bound") or {})  # an inline body's item and `with:` values
        if with_item:
            context[self.step.item_name] = item
        return context

    def render(self, value: Any, item: Any = None, *, with_item: bool = False, what: str = "") -> Any:
        try:
            return templates.render(value, self.template_context(item, with_item=with_item), seconds=self.timeout)
        except templates.TemplateError as exc:
            field = exc.where(what)
            raise TemplateFailed(framed(field, str(exc)) if field else str(exc), step=self.step.id) from None

    async def once(self, key: str, produce: Callable[[], Awaitable[Any]]) -> Any:
        """Journaled side effect: a recorded result is returned instead of doing the work again."""
        store, where = self.run.store, (self.step.id, self.visit)
        if key in (read := self.run.journal_read.get(where, {})):
            return read[key]["value"]
        if where not in self.run.journal_fresh:
            self.run.journal_fresh[where] = set() if self.run.new_run or not store.journal_any(self.run.run_id,
                                                                                               *where) else None
        written = self.run.journal_fresh[where]
        if written is None or key in written:
            recorded = store.journal_get(self.run.run_id, self.step.id, self.visit, key)
            if recorded is not None:
                return recorded["value"]
        value = await produce()
        await store.journal_write(self.run.run_id, self.step.id, self.visit, key, {"value": value})
        if written is not None:
            written.add(key)
        return value

    @property
    def defaults(self) -> Any:
        return self.run.playbook.spec.defaults

    @property
    def timeout(self) -> float:
        return self.step.timeout or self.defaults.timeout

    @property
    def retry(self) -> Retry:
        return self.step.retry or self.defaults.retry

    async def call_llm(self, request: LlmRequest) -> LlmResult:
        self.run.check_budget(self.step.id)
        started = time.monotonic()
        result = await self.watched(self.run.llm.complete(request), request.alias)
        prompt = next((message_text(m) for m in reversed(request.messages) if m.get("role") == "user"), "")
        self.run.charge(self.step.id, result, time.monotonic() - started, prompt)
        if result.cached:
            self.usage["cached"] += 1
        else:
            self.usage["llm_calls"] += result.calls
        self.usage["tokens_in"] += result.tokens_in
        self.usage["tokens_out"] += result.tokens_out
        self.usage["cost"] += result.cost
        return result

    async def watched(self, call: Coroutine[Any, Any, LlmResult], alias: str) -> LlmResult:
        """An embedded-model call, said on the console when it goes a while without a reply: on a busy
        machine a call can take minutes, and a silent terminal looks hung."""
        if self.run.project.resolve_model(alias)[1].model != LOCAL:
            return await call
        local = self.run.project.settings.local
        task = asyncio.ensure_future(call)
        try:
            waited = 0.0
            while not (await asyncio.wait({task}, timeout=local.notice_after))[0]:
                waited += local.notice_after
                self.run.hooks.on_notice(run_id=self.run.run_id, step=self.step.id, notice=_(
                    "the embedded model has been working on one call for {seconds} s without a reply yet (threads: "
                    "{threads}); it is slow on a busy or small machine — [local] threads in playbook.toml sets its "
                    "threads, and a real model ([models.default]) is much faster").format(
                        seconds=number(waited), threads=thread_count(local.threads)))
            return task.result()
        finally:
            task.cancel()  # the step was cancelled (Ctrl-C): the call goes with it

    def fixture_for(self, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any] | None]:
        """(arguments to call with, (fixed output,) or None) — unchanged outside an eval."""
        if self.run.tool_fixtures is None:
            return args, None
        return self.run.tool_fixtures.intercept(tool=tool, step=self.step.id, args=args)

    def tool_context(self) -> ToolContext:
        spec, inputs = self.run.playbook.spec, self.state.get("inputs") or {}
        files = frozenset(Path(str(inputs[n])).resolve() for n, i in spec.inputs.items()
                          if i.type == "file" and inputs.get(n))
        return ToolContext(run_id=self.run.run_id, step_id=self.step.id, run_dir=self.run.run_dir,
                           project_dir=self.run.project.root,
                           allowed_paths=self.run.project.writable_paths,
                           base_dir=self.run.playbook.path.parent, settings=self.run.project.settings,
                           playbook=self.run.playbook.spec.name, readable_paths=self.run.project.readable_paths,
                           input_files=files, store=self.run.store, arg_schema=self.arg_schema)

    def arg_schema(self, name: str) -> Any:
        return expression_schema((self.step.with_ or {}).get(name), self.run.playbook.step_schemas)


def with_ancestors(run_id: str) -> list[str]:
    """A run and the runs whose steps run it: `a.feedback-1.x-2` → itself, `a.feedback-1`, `a` (a sub-playbook's run
    id is its parent's, a dot, and the step that runs it; step ids hold no dot)."""
    parts = run_id.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


NOT_RUN: dict[str, Any] = {"output": None, "status": "skipped", "visits": 0}


NOT_RUN_MAP: dict[str, Any] = {**NOT_RUN, "items": [], "errors": []}


def skipped_result(step: Step) -> dict[str, Any]:
    """`steps.<id>` of a step skipped by `when` or off the path taken: a null output, and for a map no items.
    A copy: the run's state gets it, and the step's visit count is written into it."""
    return dict(NOT_RUN_MAP if step.map is not None else NOT_RUN)


class StepsView(Mapping[str, Any]):
    """`steps` as templates see it. A step that did not run on the path taken (a switch branch not
    chosen, a step after `goto: end`) reads like one skipped by `when`: status skipped, output null —
    so `steps.x.output or …` works, and a reference to it is never an undefined-name error. A step's output
    fields are lifted beside `output` (`steps.load.rows` is `steps.load.output.rows`) here, as they are read:
    the run's state holds each output once, and its checkpoint serializes it once."""

    # its own attributes start with `_`: the sandbox never lets a template reach them, and `steps.<id>` of a step
    # named like one (`results`, `spill`) is that step
    def __init__(self, playbook: Playbook, results: dict[str, Any], spill: Spill) -> None:
        self._mapped = playbook.mapped
        self._results = results
        self._spill = spill
        self._seen: dict[str, Any] = {}

    def __getitem__(self, step_id: str) -> Any:
        if step_id in self._seen:
            return self._seen[step_id]
        result = self._results.get(step_id)
        if result is None:
            result = NOT_RUN_MAP if self._mapped[step_id] else NOT_RUN  # KeyError: not a step of this playbook
        held = result.get("output")
        if (output := self._spill.value(step_id, held)) is not held:
            result = {**result, "output": output}
        view = {**output, **result} if isinstance(output, dict) and not self._mapped.get(step_id) else result
        self._seen[step_id] = view
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapped)

    def __len__(self) -> int:
        return len(self._mapped)


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


class ItemExecutor(Protocol):
    """A step kind: run the step once (item=None) or for one map item."""

    async def __call__(self, ctx: StepContext, item: Any, *, with_item: bool) -> Any: ...


EXECUTORS: dict[str, ItemExecutor] = {}  # the built-in kinds'; a plugin kind carries its own (executor_of)


def executor_of(kind: str) -> ItemExecutor | None:
    """What runs a step of this kind: a built-in's registered executor, or a plugin kind's own."""
    found = EXECUTORS.get(kind)
    if found is None and kind in KINDS:
        plugin: ItemExecutor | None = KINDS[kind].executor
        return plugin
    return found


def step_kind(name: str) -> Callable[[ItemExecutor], ItemExecutor]:
    def register(fn: ItemExecutor) -> ItemExecutor:
        EXECUTORS[name] = fn
        return fn

    return register
