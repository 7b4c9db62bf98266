"""Following a run that a team server's worker drives: its progress read back from the events file the
worker writes on the shared artifacts volume, replayed into the same console progress a local run prints."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, NoReturn

from rich.console import Console

from runner import observe
from runner.cli.progress import ConsoleProgress
from runner.engine.execute import RunOutcome
from runner.i18n import _
from runner.store import open_store

_EVENT_HOOKS = {"run_start": "on_run_start", "step_start": "on_step_start", "step_end": "on_step_end",
                "llm_call": "on_llm_call", "tool_call": "on_tool_call", "map_progress": "on_map_progress",
                "approval": "on_approval", "run_end": "on_run_end", "notice": "on_notice"}
_SETTLED = ("done", "failed", "cancelled", "waiting")


NO_WORKER_NOTE = 10.0  # seconds queued before the command says that no worker has taken the run


def events_size(project: Any, run_id: str) -> int:
    """Where a run's events file ends now: following a resumed run starts there, not at its first run."""
    try:
        return int((project.run_dir(run_id) / "events.jsonl").stat().st_size)
    except OSError:
        return 0


def follow(project: Any, run_id: str, console: Console, *, offset: int = 0, poll: float = 0.3) -> RunOutcome:
    """Print a run's progress from its events file (on the shared artifacts volume) as a worker writes it,
    from byte `offset`, until the run pauses or ends; returns how it ended, as a local run would. Ctrl-C stops
    following (exit 130); the run goes on on the workers."""
    store = open_store(project)
    progress = ConsoleProgress(console, project.settings.currency)
    hooks = [progress, *observe.process_hooks()]  # and the log lines `run --log-json` asked for
    events = project.run_dir(run_id) / "events.jsonl"
    queued_since, noted = time.monotonic(), False
    try:
        while True:
            run = store.get_run(run_id)
            settled = run is not None and run["status"] in _SETTLED  # read before the file: no event is missed
            if run is not None and run["status"] == "queued" and not noted and \
                    time.monotonic() - queued_since > NO_WORKER_NOTE:
                console.print(_("Queued: no worker has taken it yet (playbook status lists the workers; playbook "
                                "worker starts one)"), markup=False)
                noted = True
            if events.exists():
                with events.open("rb") as stream:
                    stream.seek(offset)
                    chunk = stream.read()
                complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
                offset += len(complete)
                for line in complete.decode("utf-8", errors="replace").splitlines():
                    _replay(hooks, line, run_id)
            if settled and run is not None:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        stopped_following(console, run_id)
    finally:
        store.close()
    for hook in hooks[1:]:  # the end, from the run row, as a local run reports it
        hook.on_run_end(run_id=run_id, status=run["status"], error=run["error"], tokens_in=run["tokens_in"],
                        tokens_out=run["tokens_out"], cost=run["cost"])
    return RunOutcome(run_id, run["status"], outputs=run["outputs"] or {}, error=run["error"],
                      pending=run["pending"], run_dir=str(project.run_dir(run_id)), tokens_in=run["tokens_in"],
                      tokens_out=run["tokens_out"], cost=run["cost"], problems=run["problems"] or [])


def stopped_following(console: Console, run_id: str) -> NoReturn:
    """Ctrl-C once the run is with the workers: it goes on there; exit 130."""
    console.print("\n" + _("No longer following; run {run_id} goes on on a worker (playbook runs show {run_id}; "
                          "to stop it: playbook cancel {run_id})").format(run_id=run_id), markup=False)
    raise SystemExit(130) from None


def _replay(hooks: list[Any], line: str, run_id: str) -> None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return
    hook = _EVENT_HOOKS.get(event.pop("event", ""))
    event.pop("ts", None)
    if hook is None or hook == "on_run_end":  # the end is reported from the run row, once
        return
    if hook == "on_step_end" and "seconds" not in event:
        return
    event.setdefault("run_id", run_id)
    for each in hooks:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # an event of another version: progress is
            getattr(each, hook)(**event)  # best effort, the outcome (from the run row) is not
