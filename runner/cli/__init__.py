"""The `playbook` command line: `app.py` holds the typer app and `main`, each command group its own module,
`common.py` what they share. Importing this package registers every command."""

import importlib
import inspect
from typing import Any

from rich.markup import escape

from runner.cli import click_words
from runner.cli.app import app, entry, main
from runner.i18n import _

# registered in this order, the order `playbook --help` lists them
COMMAND_GROUPS = ("run", "runs", "authoring", "importing", "kb", "evals", "schedules", "serve", "team")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"runner.cli.{_group}")


def _plain_help(typer_app: Any) -> None:
    """Help text is plain text, not rich markup: `[[schedules]]` and `[paths] read` show as written. A command's
    help is its docstring, in the user's language (scripts/catalog.py puts the docstrings in the catalog)."""
    for command in typer_app.registered_commands:
        doc = inspect.getdoc(command.callback)
        command.help = escape(command.help or (_(doc) if doc else ""))
    for group in typer_app.registered_groups:
        _plain_help(group.typer_instance)


_plain_help(app)
click_words.install()

__all__ = ["COMMAND_GROUPS", "app", "entry", "main"]
