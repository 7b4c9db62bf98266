"""What the web page, the JSON API and the IM callbacks do, in one place: list and show runs, decide
approvals (once), start runs. Runs continue in background tasks of the server's event loop — or, with a
[queue] broker (a team server), on `playbook worker`s."""

from __future__ import annotations

import asyncio
import glob
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import atomic
from runner.assembly import assemble
from runner.config import Project
from runner.dsl.output_schema import to_model
from runner.dsl.validate import Playbook, load_and_validate, run_schemas
from runner.engine import liveness, step_log
from runner.engine.approvals import EditError, apply_edits, diff
from runner.engine.events import Hooks
from runner.engine.execute import new_run_id
from runner.engine.liveness import shown_status, this_process
from runner.engine.preflight import prepare_inputs
from runner.errors import DecisionTaken, PlaybookError, RunError, framed
from runner.i18n import _
from runner.team import queue
from runner.wording import status as status_word


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    """The run is not in a state where this makes sense (not waiting, already decided)."""


@dataclass
class FieldErrors(ValueError):
    """Edits that do not fit: messages per editable field ('' = the whole form)."""

    errors: dict[str, str]


@dataclass
class Decided:
    run_id: str
    step: str
    visit: int
    action: str
    by: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    repeated: bool = False  # this decision had been applied before; nothing changed now


class Service:
    def __init__(self, project: Project, *, hooks: list[Hooks] | None = None) -> None:
        self.project = project
        self.runner = assemble(project, hooks=hooks or [])
        self.store = self.runner.store
        self.tasks: set[asyncio.Task[Any]] = set()

    def close(self) -> None:
        self.runner.close()

    # reading
    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.list_runs(limit)

    def run(self, run_id: str) -> dict[str, Any]:
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFound(_("no run '{run_id}'").format(run_id=run_id))
        return run

    def view(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run as a reader should see it: `shown_status` is `interrupted` when its process is gone (killed,
        crashed) or it was stopped by Ctrl-C; its clock stops at its last event; `reached` says where it was."""
        run_dir = self.project.run_dir(run["id"].split(".")[0])
        shown = shown_status(run)
        reached = None
        if shown in ("interrupted", "running"):  # the steps table; a run from before it: the events file's tail
            reached = step_log.where_it_stopped(self.store, run_dir, run["id"])
        return {**run, "shown_status": shown, "duration": liveness.duration(run, run_dir), "reached": reached}

    def schemas(self, run: dict[str, Any]) -> dict[str, Any]:
        """Schemas (labels, bounds) of each step's output and of the run's inputs and outputs, from the playbook
        source the run was started with."""
        return run_schemas(run["path"], run["source"])

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's steps as the store keeps them (status, time, usage, map progress, first input, output)."""
        return self.store.step_rows(run_id)

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """Step events of a run, in order, from its events file: for runs recorded before the steps table."""
        import json

        events = self.project.run_dir(run_id.split(".")[0]) / "events.jsonl"
        if not events.exists():
            return []
        rows = []
        for line in events.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("event") in ("step_end", "map_progress", "approval", "run_end", "tool_call", "llm_call") and \
                    event.get("run_id", run_id) == run_id:
                rows.append(event)
        return rows

    def artifacts(self, run_id: str, *, logs: bool = False) -> list[Path]:
        """Files of the run folder: what the run produced, and with `logs` its events.jsonl and run.json."""
        folder = self.project.run_dir(run_id.split(".")[0])
        hidden = set() if logs else {"events.jsonl", "run.json"}
        if not folder.exists():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in hidden and not atomic.is_partial(p))

    def artifact(self, run_id: str, name: str) -> Path:
        for path in self.artifacts(run_id, logs=True):
            if path.name == name:  # only files listed for the run, never a path the request builds
                return path
        raise NotFound(_("run '{run_id}' has no artifact '{name}'").format(run_id=run_id, name=name))

    def playbooks(self) -> list[Playbook]:
        found = []
        for pattern in self.project.settings.scheduler.playbooks:
            for path in sorted(glob.glob(str(self.project.root / pattern))):
                try:
                    found.append(load_and_validate(path))
                except PlaybookError:
                    continue
        return found

    def playbook(self, name: str) -> Playbook:
        for playbook in self.playbooks():
            if playbook.spec.name == name:
                return playbook
        raise NotFound(_("no playbook '{name}'").format(name=name))

    # acting
    def start(self, playbook: Playbook, given: dict[str, Any]) -> str:
        inputs = prepare_inputs(playbook, given, self.project, file=str(playbook.path))  # PlaybookError on bad input
        run_id = new_run_id(playbook.spec.name)
        if queue.broker(self.project):
            queue.enqueue_start(self.project, self.store, playbook, inputs, run_id)
        else:
            self._background(self.runner.start(playbook, inputs, run_id=run_id))
        return run_id

    def resume(self, run_id: str) -> None:
        """Continue an interrupted or failed run in the background, once however often it is asked."""
        run = self.run(run_id)
        if shown_status(run) not in ("interrupted", "failed"):
            raise Conflict(_("run '{run_id}' is {status}; only an interrupted or failed run is resumed").format(
                               run_id=run_id, status=status_word(run['status'])))
        if not self.store.take_over(run, **this_process()):
            raise Conflict(_("run '{run_id}' was resumed by someone else just now").format(run_id=run_id))
        self._continue(run["id"], None)

    def decide(self, run_id: str, action: str, *, by: str, comment: str | None = None,
               edits: dict[str, Any] | None = None, step: str | None = None, visit: int | None = None) -> Decided:
        """Apply an approval decision once. A decision for a (step, visit) already decided returns what
        was recorded and changes nothing; edits that do not fit raise FieldErrors, also changing nothing."""
        if action not in ("approve", "reject"):
            raise FieldErrors({"": _("unknown action '{action}' (approve or reject)").format(action=action)})
        run = self.run(run_id)
        pending = run["pending"] or {}
        if step is not None and (pending.get("step"), pending.get("visit")) != (step, visit):
            return self._recorded(run_id, step, visit)
        if run["status"] != "waiting" or not pending:
            raise Conflict(_("run '{run_id}' is {status}, not waiting for approval").format(
                               run_id=run_id, status=status_word(run['status'])))
        edits = edits or {}
        try:
            model = to_model(pending["schema"], "Draft") if pending.get("schema") else None
            final = apply_edits(pending["draft"], edits, pending.get("editable") or [], model)
        except EditError as exc:
            raise FieldErrors(_field_errors(exc.problems, pending.get("editable") or [])) from None
        decision = {"action": action, "comment": comment, "edits": edits, "by": by, "at": time.time()}
        try:
            self.runner.claim(run_id, decision)  # the store's compare-and-set: one decision, whoever asks
        except DecisionTaken as exc:
            if exc.recorded.get("action") is None:
                raise Conflict(str(exc)) from None
            return Decided(run_id, pending["step"], pending["visit"], exc.recorded["action"],
                           exc.recorded.get("by") or "", [], repeated=True)
        self._continue(run["id"], decision)
        return Decided(run_id, pending["step"], pending["visit"], action, by, diff(pending["draft"], final))

    def _recorded(self, run_id: str, step: str | None, visit: int | None) -> Decided:
        for record in self.store.approvals(run_id):
            if record["step"] == step and record["visit"] == visit:
                return Decided(run_id, record["step"], record["visit"], record["action"], record["by"],
                               record["diff"] or [], repeated=True)
        claimed = self.store.decision(run_id, str(step), int(visit or 0))
        if claimed is not None:  # decided, and the run is applying it right now
            return Decided(run_id, str(step), int(visit or 0), claimed["action"], claimed.get("by") or "", [],
                           repeated=True)
        raise Conflict(_("run '{run_id}' is not waiting at step '{step}' (visit {visit})").format(
                           run_id=run_id, step=step, visit=visit))

    def _continue(self, run_id: str, decision: dict[str, Any] | None) -> None:
        """Drive a run this process has just claimed: here, or on a worker."""
        if queue.broker(self.project):
            queue.enqueue_continue(self.project, self.store, run_id, decision)
        else:
            self._background(self.runner.resume(run_id, decision=decision, claimed=True))

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _field_errors(problems: list[tuple[str, str]], editable: list[str]) -> dict[str, str]:
    """[('themes[0].count', '…')] → {'themes': 'themes[0].count: …'}: each problem beside its editable field."""
    errors: dict[str, str] = {}
    for where, message in problems:
        name = re.split(r"[.\[]", where, maxsplit=1)[0]
        key = name if name in editable else ""
        said = framed(where, message) if where else message
        errors[key] = errors[key] + _("; ") + said if key in errors else said
    return errors


__all__ = ["Conflict", "Decided", "FieldErrors", "NotFound", "RunError", "Service"]
