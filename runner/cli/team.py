"""`playbook worker` and `playbook status`: a team server's workers and its health."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import err, guard, out, project_here
from runner.cli.observing import LogJson, LogLevel, MetricsHost, MetricsPort, serve_pool_metrics, start_logs
from runner.errors import PlaybookError
from runner.i18n import _
from runner.wording import status as status_word


def team_broker(project: Any) -> str:
    from runner.team.queue import broker

    url = broker(project)
    if not url:
        raise PlaybookError(_("no [queue] broker in playbook.toml (or PLAYBOOK_BROKER_URL): a team server hands runs "
                              "to workers through Redis — see the README, Team server"))
    return url


@app.command()
def worker(concurrency: Annotated[int, typer.Option(help=_("runs and chunks this worker drives at once "
                                                          "(one process each)"))] = 2,
           queues: Annotated[str, typer.Option(help=_("comma-separated: playbook.runs (starts, resumes, "
                                                     "decisions, schedules), playbook.chunks (parts of large maps)"))]
           = "playbook.runs,playbook.chunks",
           name: Annotated[str | None, typer.Option(help=_("worker name (default: celery@<host>); unique per "
                                                        "machine"))] = None,
           log_level: LogLevel = "INFO", log_json: LogJson = None, metrics_port: MetricsPort = 0,
           metrics_host: MetricsHost = "127.0.0.1") -> None:
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
            raise PlaybookError(_("--queues: unknown queue {unknown} (queues: {known})").format(
                unknown=", ".join(unknown), known=", ".join(QUEUES)))
        os.environ["PLAYBOOK_PROJECT"] = str(project.root)  # the worker's processes load this same project
        argv = ["worker", f"--concurrency={concurrency}", f"--queues={queues}", f"--loglevel={log_level.upper()}",
                "--without-gossip", "--without-mingle"]
        if name:
            argv.append(f"--hostname={name}")
        host = socket.gethostname()
        if start_logs(project, log_json, log_level, worker=(name or "celery@%h").replace("%h", host)):
            argv.insert(0, "--quiet")  # (celery's own option, before the command) no banner among the JSON lines
        if metrics_port:  # before the pool forks: its processes count into the files this one serves
            serve_pool_metrics(metrics_port, metrics_host)
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
        from runner.team.queue import app_for, depths, unreachable

        project = project_here()
        team_broker(project)
        app_ = app_for(project)
        try:
            replies = app_.control.inspect(timeout=1.5).active() or {}
        except Exception as exc:  # kombu's or redis's connection errors
            raise unreachable(project, exc) from None
        out.print(_("workers: {count}").format(count=len(replies)), markup=False)
        for worker_name, tasks in sorted(replies.items()):
            doing = ", ".join(f"{t['name'].split('.')[-1]} {t['kwargs'].get('run_id', '')}" for t in tasks)
            out.print(_("  {worker}\t{count} task(s)\t{doing}").format(worker=worker_name, count=len(tasks),
                                                                     doing=doing), markup=False)
        for queue_name, count in depths(project).items():
            out.print(_("queue {queue}: {count} waiting").format(queue=queue_name, count=count), markup=False)
        store = open_store(project)
        try:
            counts = store.run_counts()
        finally:
            store.close()
        shown = "，".join(f"{status_word(k)} {v}" for k, v in sorted(counts.items())) or _("none")
        out.print(_("runs: {counts}").format(counts=shown), markup=False)
        if not replies:
            nobody = _("no worker answered: start one with `playbook worker`")
            err.print("[yellow]" + _("note") + "[/] " + escape(nobody))

    guard(show)
