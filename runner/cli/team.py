"""`playbook worker` and `playbook status` (a team server), and following a run that a worker drives."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Annotated, Any

import typer

from runner.cli.app import app
from runner.cli.common import EXIT, err, guard, out, project_here, report
from runner.errors import PlaybookError

_EVENT_HOOKS = {"run_start": "on_run_start", "step_start": "on_step_start", "step_end": "on_step_end",
                "llm_call": "on_llm_call", "tool_call": "on_tool_call", "map_progress": "on_map_progress",
                "approval": "on_approval", "run_end": "on_run_end"}
_SETTLED = ("done", "failed", "cancelled", "waiting")


def team_broker(project: Any) -> str:
    from runner.team.queue import broker

    url = broker(project)
    if not url:
        raise PlaybookError("no [queue] broker in playbook.toml (or PLAYBOOK_BROKER_URL): a team server hands runs "
                            "to workers through Redis — see the README, Team server")
    return url


def follow(project: Any, run_id: str, *, poll: float = 0.3) -> None:
    """Print a run's progress from its events file (on the shared artifacts volume) as a worker writes it,
    until the run pauses or ends; exit with the run's status code, as a local `playbook run` would."""
    from runner.cli.progress import ConsoleProgress
    from runner.engine.execute import RunOutcome
    from runner.store import open_store

    store = open_store(project)
    progress = ConsoleProgress(out, project.settings.currency)
    events = project.run_dir(run_id) / "events.jsonl"
    offset = 0
    try:
        while True:
            run = store.get_run(run_id)
            settled = run is not None and run["status"] in _SETTLED  # read before the file: no event is missed
            if events.exists():
                with events.open("rb") as stream:
                    stream.seek(offset)
                    chunk = stream.read()
                complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
                offset += len(complete)
                for line in complete.decode("utf-8", errors="replace").splitlines():
                    _replay(progress, line, run_id)
            if settled and run is not None:
                break
            time.sleep(poll)
    finally:
        store.close()
    outcome = RunOutcome(run_id, run["status"], outputs=run["outputs"] or {}, error=run["error"],
                         pending=run["pending"], run_dir=str(project.run_dir(run_id)), tokens_in=run["tokens_in"],
                         tokens_out=run["tokens_out"], cost=run["cost"], problems=run["problems"] or [])
    report(outcome, project.settings.currency)
    raise typer.Exit(EXIT[outcome.status])


def _replay(progress: Any, line: str, run_id: str) -> None:
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
    with contextlib.suppress(KeyError, TypeError, ValueError):  # an event of another version: progress is best
        getattr(progress, hook)(**event)  # effort, the outcome (from the run row) is not


@app.command()
def worker(concurrency: Annotated[int, typer.Option(help="runs and chunks this worker drives at once "
                                                        "(one process each)")] = 2,
           queues: Annotated[str, typer.Option(help="comma-separated: playbook.runs (starts, resumes, "
                                                   "decisions, schedules), playbook.chunks (parts of large maps)")]
           = "playbook.runs,playbook.chunks",
           name: Annotated[str | None, typer.Option(help="worker name (default: celery@<host>); unique per "
                                                      "machine")] = None,
           loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO") -> None:
    """Run work from the queue ([queue] broker): a Celery worker. Ctrl-C or SIGTERM stops it gracefully:
    it takes no new work and finishes what it holds (a second Ctrl-C stops at once; the work goes to
    another worker)."""
    def start() -> None:
        from runner.team.queue import QUEUES, app_for

        project = project_here()
        team_broker(project)
        unknown = [q for q in queues.split(",") if q.strip() not in QUEUES]
        if unknown:
            raise PlaybookError(f"--queues: unknown queue {', '.join(unknown)} (queues: {', '.join(QUEUES)})")
        os.environ["PLAYBOOK_PROJECT"] = str(project.root)  # the worker's processes load this same project
        argv = ["worker", f"--concurrency={concurrency}", f"--queues={queues}", f"--loglevel={loglevel}",
                "--without-gossip", "--without-mingle"]
        if name:
            argv.append(f"--hostname={name}")
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per LLM request drowns the worker's log
        app_for(project).worker_main(argv)

    guard(start)


@app.command()
def status() -> None:
    """A team server's health: live workers and what they run, queue depth, runs by status."""
    def show() -> None:
        from runner.store import open_store
        from runner.team.queue import QUEUES, app_for

        project = project_here()
        url = team_broker(project)
        app_ = app_for(project)
        replies = app_.control.inspect(timeout=1.5).active() or {}
        out.print(f"workers: {len(replies)}", markup=False)
        for worker_name, tasks in sorted(replies.items()):
            doing = ", ".join(f"{t['name'].split('.')[-1]} {t['kwargs'].get('run_id', '')}" for t in tasks)
            out.print(f"  {worker_name}\t{len(tasks)} task(s)\t{doing}", markup=False)
        import redis

        client = redis.Redis.from_url(url)
        try:
            for queue_name in QUEUES:
                out.print(f"queue {queue_name}: {client.llen(queue_name)} waiting", markup=False)
        except redis.RedisError as exc:
            raise PlaybookError(f"cannot read the queue at the broker: {exc}") from None
        finally:
            client.close()
        store = open_store(project)
        try:
            counts = store.run_counts()
        finally:
            store.close()
        out.print("runs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"), markup=False)
        if not replies:
            err.print("[yellow]note[/] no worker answered: start one with `playbook worker`")

    guard(show)
