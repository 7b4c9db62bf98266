"""`playbook worker` and `playbook status`: a team server's workers and its health."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from runner.cli.app import app
from runner.cli.common import err, guard, out, project_here
from runner.errors import PlaybookError


def team_broker(project: Any) -> str:
    from runner.team.queue import broker

    url = broker(project)
    if not url:
        raise PlaybookError("no [queue] broker in playbook.toml (or PLAYBOOK_BROKER_URL): a team server hands runs "
                            "to workers through Redis — see the README, Team server")
    return url


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
        from runner.team.work import register_tasks

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
        app_ = app_for(project)
        register_tasks(app_)
        preload()
        app_.worker_main(argv)

    guard(start)


def preload() -> None:
    """Import what every run needs once, in the worker's main process: its pool processes are forked from it,
    so a run or chunk does not pay the imports (over a second) when it reaches a fresh process."""
    import importlib

    for module in ("runner.engine.execute", "langgraph.graph", "langgraph.checkpoint.postgres.aio",
                   "langgraph.checkpoint.sqlite.aio", "openai", "psycopg"):
        importlib.import_module(module)


@app.command()
def status() -> None:
    """A team server's health: live workers and what they run, queue depth, runs by status."""
    def show() -> None:
        from runner.store import open_store
        from runner.team.queue import QUEUES, app_for, unreachable

        project = project_here()
        url = team_broker(project)
        app_ = app_for(project)
        try:
            replies = app_.control.inspect(timeout=1.5).active() or {}
        except Exception as exc:  # kombu's or redis's connection errors
            raise unreachable(project, exc) from None
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
            raise unreachable(project, exc) from None
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
