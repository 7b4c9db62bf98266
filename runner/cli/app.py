"""The `playbook` command: the typer app and `main`. Commands live one group per module
(`runner/cli/__init__.py` imports them); heavy modules (litellm, langgraph) load only inside commands that run.

Exit codes: 0 done · 1 run failed · 2 user error (bad playbook, inputs, edits) · 3 waiting for
approval · 4 cancelled · 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import fail
from runner.cli.leaving import flush_output
from runner.errors import PlaybookError, RunError
from runner.i18n import _

app = typer.Typer(name="playbook", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help=_("Run YAML playbooks for product-operations work: LLM steps, tools, approvals.\n\n"
                         "Exit codes: 0 done, 1 failed, 2 user error, 3 waiting for approval, 4 cancelled, "
                         "130 interrupted (Ctrl-C or SIGTERM; resume later)."))


@app.callback()
def project_option(project: Annotated[Path | None, typer.Option(
        "--project", metavar="DIR", help=_("the project folder (its playbook.toml and .playbook/ runs); default: "
                                           "PLAYBOOK_PROJECT, else the current folder"))] = None) -> None:
    if project is not None:  # every command below reads the project through load_project, which honours this
        os.environ["PLAYBOOK_PROJECT"] = str(project)


def main() -> None:
    try:
        app()
    except (PlaybookError, RunError) as exc:
        fail(exc)
        sys.exit(exc.exit_code)


def entry() -> None:
    """The `playbook` command itself: `main`, then an exit without Python's teardown of every module and object
    (0.2 s of CPU after a run, measured in benchmarks/README.md) once the work is closed in order: output
    flushed, the exit handlers run (a trace exporter's last spans, a metrics folder removed). The store needs
    nothing more: every write was committed as it was made. A thread still working (not a daemon) gets the
    ordinary exit, which waits for it."""
    import atexit
    import threading

    try:
        main()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    flush_output()
    atexit._run_exitfuncs()
    flush_output()
    os._exit(code)
