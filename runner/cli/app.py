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
