"""The `playbook` command: the typer app and `main`. Commands live one group per module
(`runner/cli/__init__.py` imports them); heavy modules (litellm, langgraph) load only inside commands that run.

Exit codes: 0 done · 1 run failed · 2 user error (bad playbook, inputs, edits) · 3 waiting for
approval · 4 cancelled · 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import sys

import typer

from runner.cli.common import fail
from runner.errors import PlaybookError, RunError

app = typer.Typer(name="playbook", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="Run YAML playbooks for product-operations work: LLM steps, tools, approvals.\n\n"
                       "Exit codes: 0 done, 1 failed, 2 user error, 3 waiting for approval, 4 cancelled.")


def main() -> None:
    try:
        app()
    except (PlaybookError, RunError) as exc:
        fail(exc)
        sys.exit(exc.exit_code)
