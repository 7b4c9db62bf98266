"""The `playbook` command line: `app.py` holds the typer app and `main`, each command group its own module,
`common.py` what they share. Importing this package registers every command."""

import importlib

from runner.cli.app import app, main

# registered in this order, the order `playbook --help` lists them
COMMAND_GROUPS = ("run", "runs", "authoring", "evals", "schedules", "serve")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"runner.cli.{_group}")

__all__ = ["COMMAND_GROUPS", "app", "main"]
