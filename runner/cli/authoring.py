"""`playbook validate`, `graph`, `schema` and `tools`: what a playbook author checks before running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import error_line, fail, out, playbook_path, print_warnings, project_here
from runner.errors import PlaybookError
from runner.i18n import _


@app.command()
def validate(playbooks: Annotated[list[Path], typer.Argument(metavar="FILE…", help=_("playbook files"))]) -> None:
    """Check playbooks without running them (no model, no network)."""
    from runner.dsl.validate import load_and_validate
    from runner.engine.preflight import kb_problems, model_problems
    from runner.errors import PlaybookValidationError

    failed = False
    project = None
    for path in playbooks:
        try:
            playbook = load_and_validate(playbook_path(path))
            project = project or project_here()  # the model aliases it calls must be defined in playbook.toml
            if problems := model_problems(playbook, project) + kb_problems(playbook, project):
                raise PlaybookValidationError(problems)
            print_warnings(playbook)
            out.print("[green]" + _("ok") + f"[/] {escape(str(path))}")
        except PlaybookError as exc:
            failed = True
            for diagnostic in exc.diagnostics:
                error_line(str(diagnostic))
    raise typer.Exit(2 if failed else 0)


@app.command()
def graph(playbook: Path) -> None:
    """Print the compiled graph as mermaid."""
    from runner.dsl.validate import load_and_validate
    from runner.engine.compile import mermaid

    try:
        out.print(mermaid(load_and_validate(playbook_path(playbook))), markup=False)
    except PlaybookError as exc:
        raise fail(exc) from None


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o", help=_("the file to write"))] = None,
           suite: Annotated[bool, typer.Option("--suite", help=_("the eval suite schema instead"))] = False) -> None:
    """Write the playbook (or eval suite) JSON Schema, for editors, to a file or stdout."""
    from runner.dsl.json_schema import playbook_json_schema
    from runner.evals.suite import suite_json_schema

    text = json.dumps(suite_json_schema() if suite else playbook_json_schema(), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(_("wrote {path}").format(path=output), markup=False)
    else:
        print(text)


@app.command()
def tools() -> None:
    """List every tool with its arguments."""
    from runner.cli.views import print_tools

    print_tools(out)
