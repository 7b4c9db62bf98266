"""`playbook runs list|show|logs`."""

from __future__ import annotations

from typing import Annotated

import typer

from runner.cli.app import app
from runner.cli.common import guard, out, project_here
from runner.i18n import _

runs_app = typer.Typer(help=_("List and inspect runs (alone: the recent runs, as `runs list`)."))
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs_default(context: typer.Context) -> None:
    """`playbook runs` alone lists the recent runs."""
    if context.invoked_subcommand is None:
        runs_list()


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option(help=_("how many runs, newest first"))] = 30) -> None:
    """Recent runs with status, duration, tokens and cost."""
    from runner.cli.views import print_runs

    print_runs(out, project_here(), limit)


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """One run: status, inputs, outputs, steps, approvals."""
    from runner.cli.views import show_run

    guard(lambda: show_run(out, project_here(), run_id))


@runs_app.command("logs")
def runs_logs(run_id: str, raw: Annotated[bool, typer.Option(help=_("the JSON lines as written"))] = False) -> None:
    """The run's events (events.jsonl)."""
    from runner.cli.views import show_logs

    guard(lambda: show_logs(out, project_here(), run_id, raw))
