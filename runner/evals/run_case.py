"""Run one case once: an isolated project state, tool fixtures, scripted approvals, every step captured."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runner.assembly import assemble
from runner.config import Project
from runner.dsl.inputs import resolve_inputs
from runner.dsl.validate import Playbook
from runner.dsl.yaml_loader import safe_load
from runner.engine.events import Hooks
from runner.errors import PlaybookError
from runner.evals.suite import CaseSpec, Fixture, ScriptedDecision
from runner.i18n import _
from runner.models.llm import ReplySource


class Capture(Hooks):
    """Every step's output (each visit), every approval event, in the order they happened."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.approvals: dict[str, list[dict[str, Any]]] = {}

    def on_step_end(self, **event: Any) -> None:
        if "." in str(event.get("run_id", "")):
            return  # a sub-playbook's own steps; its outputs reach the parent through the calling step
        step, visit = event["step"], event["visit"]
        entry = self.steps.setdefault(step, {"visits": []})
        output = event.get("output")
        lifted = output if isinstance(output, dict) else {}  # a map's output is a list; it has `items` instead
        this = {**lifted, "output": output, "status": event.get("status"), "visit": visit,
                "seconds": event.get("seconds", 0.0), "cost": event.get("cost", 0.0),
                "tokens": int(event.get("tokens_in", 0)) + int(event.get("tokens_out", 0)),
                "llm_calls": event.get("llm_calls", 0), **({"items": event["items"]} if "items" in event else {})}
        entry["visits"] = [v for v in entry["visits"] if v["visit"] != visit] + [this]
        visits = entry["visits"]
        entry.clear()
        entry.update(this, visits=visits)  # the latest visit's fields, like `steps.<id>` in a playbook
        if f"{step}#{visit}" not in self.order:
            self.order.append(f"{step}#{visit}")

    def on_approval(self, **event: Any) -> None:
        if event.get("step"):
            self.approvals.setdefault(event["step"], []).append(
                {k: event.get(k) for k in ("action", "visit", "comment", "by", "title")})


class Fixtures:
    """The case's fixtures as the engine's ToolFixtures: first matching fixture wins."""

    def __init__(self, fixtures: list[Fixture], folder: Path, pages: tuple[str, Path] | None) -> None:
        self.fixtures, self.folder, self.pages = fixtures, folder, pages

    def intercept(self, *, tool: str, step: str, args: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any] | None]:
        for f in self.fixtures:
            if f.tool != tool or (f.step and f.step != step):
                continue
            if any(args.get(k) != v for k, v in f.match.items()):
                continue
            if "output" in f.model_fields_set:
                return args, (f.output,)
            if f.output_file is not None:
                return args, (_recorded(self.folder / f.output_file),)
            if f.page is not None and self.pages is not None:
                base, root = self.pages
                served = (self.folder / f.page).resolve().relative_to(root).as_posix()
                return {**args, "url": f"{base}/{quote(served)}"}, None
            return {**args, **{k: _relative(v, self.folder) for k, v in f.args.items()}}, None
        return args, None


def _recorded(path: Path) -> Any:

    return safe_load(path.read_text(encoding="utf-8"), str(path))  # YAML is a superset of JSON


def _suite_file(value: Any, folder: Path) -> Any:
    """A file input named relative to the suite (and not to the working directory) is passed on absolute."""
    if isinstance(value, str) and not Path(value).is_absolute() and not Path(value).exists() \
            and (folder / value).exists():
        return str((folder / value).resolve())
    return value


def _relative(value: Any, folder: Path) -> Any:
    """A fixture file named relative to the suite is passed on as a path that exists."""
    if isinstance(value, str) and (folder / value).exists():
        return str((folder / value).resolve())
    return value


@dataclass
class CaseRun:
    case: str
    repeat: int
    status: str = "error"
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    approvals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    cost: float = 0.0
    run_dir: str = ""
    local_paths: dict[str, str] = field(default_factory=dict)  # machine-specific text → placeholder, for reports

    def record(self) -> dict[str, Any]:
        """What assertion paths walk."""
        return {"outputs": self.outputs, "steps": self.steps, "approvals": self.approvals,
                "run": {"status": self.status, "error": self.error, "seconds": self.seconds,
                        "tokens": self.tokens, "cost": self.cost}}


async def run_case(case: CaseSpec, repeat: int, *, playbook: Playbook, project: Project, fixtures: Fixtures,
                   replies: ReplySource | None, folder: Path) -> CaseRun:
    capture = Capture()
    result = CaseRun(case.id, repeat)
    runner = assemble(project, hooks=[capture], tool_fixtures=fixtures, notify=False)  # replays notify no one
    runner.llm.replies = replies
    started = time.monotonic()
    try:
        given = {k: _suite_file(v, folder) if k in playbook.spec.inputs and playbook.spec.inputs[k].type == "file"
                 else v for k, v in case.inputs.items()}
        inputs = resolve_inputs(playbook.spec, given, file=f"case '{case.id}'", base_dir=folder)
        outcome = await runner.start(playbook, inputs)
        script = _Script(case.approvals)
        while outcome.status == "waiting" and outcome.pending is not None:
            decision = script.next(outcome.pending)
            if decision is None:
                break
            outcome = await runner.resume(outcome.run_id, decision=decision)
        result.status, result.outputs = outcome.status, outcome.outputs
        result.error = outcome.error or script.problem
        if outcome.status == "waiting" and script.problem:
            result.status = "stuck"
        result.tokens, result.cost, result.run_dir = outcome.tokens_in + outcome.tokens_out, outcome.cost, \
            outcome.run_dir
    except PlaybookError as exc:  # bad inputs for this case
        result.error = str(exc)
    finally:
        runner.close()
    result.seconds = round(time.monotonic() - started, 3)
    result.steps, result.order, result.approvals = capture.steps, capture.order, capture.approvals
    return result


class _Script:
    """Hands out the case's scripted decisions, per approval step, in order."""

    def __init__(self, decisions: list[ScriptedDecision]) -> None:
        self.left = list(decisions)
        self.problem: str | None = None

    def next(self, pending: dict[str, Any]) -> dict[str, Any] | None:
        step = pending.get("step")
        found = next((d for d in self.left if d.step == step), None)
        if found is None:
            self.problem = (_("the run waits at approval '{step}' (visit {value}) and the case scripts no further "
                              "decision for it; add one under `approvals:`").format(
                                step=step, value=pending.get('visit')))
            return None
        self.left.remove(found)
        return {"action": found.action, "comment": found.comment, "edits": found.edits, "by": found.by,
                "at": time.time()}
