"""`playbook import dify APP.yml` / `import promptflow flow.dag.yaml`: another tool's workflow → a playbook, with
what could not be translated listed (exit 1 when anything was left out; the playbook written still validates once its
code-node tools are installed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import error_line, out
from runner.i18n import _

if TYPE_CHECKING:
    from runner.importers.dify import Imported

MAX_APP_BYTES = 20 * 2**20  # the largest of 46 real exports is 0.1 MB
import_app = typer.Typer(help=_("Translate another tool's workflow into a playbook."), no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("dify")
def import_dify(source: Annotated[Path, typer.Argument(metavar="APP.yml", help=_("a Dify app's DSL export"))],
                output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE", help=_(
                    "where to write the playbook (default: playbooks/<app name>.yaml)"))] = None,
                force: Annotated[bool, typer.Option("--force", help=_("overwrite an existing playbook"))] = False,
                ) -> None:
    """Translate a Dify workflow or chatflow (DSL 0.1.x–0.3.x) into a playbook."""
    from runner.dsl.yaml_loader import safe_load
    from runner.errors import PlaybookError
    from runner.importers.dify import ImportRefused
    from runner.importers.dify_steps import translate
    try:
        if source.stat().st_size > MAX_APP_BYTES:
            error_line(_("{path}: {size} MB is not a Dify export (they are well under {limit} MB)").format(
                           path=source, size=source.stat().st_size // 2**20, limit=MAX_APP_BYTES // 2**20))
            raise typer.Exit(2)
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        error_line(_("{path}: not UTF-8 text (byte {start}); a Dify export is a UTF-8 YAML file").format(
                       path=source, start=exc.start))
        raise typer.Exit(2) from None
    except OSError as exc:
        error_line(_("{path}: cannot read it: {reason}").format(path=source, reason=exc.strerror))
        raise typer.Exit(2) from None
    from runner.importers.naming import slug

    try:
        result = translate(safe_load(text, str(source)), slug(output.stem, "imported") if output else None)
    except PlaybookError as exc:
        for diagnostic in exc.diagnostics:
            error_line(str(diagnostic))
        raise typer.Exit(2) from None
    except ImportRefused as exc:
        error_line(f"{source}: {exc}")
        raise typer.Exit(2) from None
    _write(result, output or Path("playbooks") / f"{result.name}.yaml", force, source.name)


def _write(result: Imported, target: Path, force: bool, source: str, evals: Path | None = None) -> None:
    """The playbook, its code-node tools and its eval suite written, the report printed; exit 1 when anything was
    left out."""
    from runner.importers.write import eval_suite, playbook_text, plugin_package, report

    suite_file = evals / f"{result.name}.yaml" if evals is not None and result.suite is not None else None
    for path in (target, suite_file):
        if path is not None and path.exists() and not force:
            error_line(_("{path} exists; pass --force to overwrite it, or -o to write elsewhere").format(path=path))
            raise typer.Exit(2)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        package = plugin_package(result, target.parent)
    except ValueError as exc:
        error_line(f"{source}: {exc}")
        raise typer.Exit(2) from None
    target.write_text(playbook_text(result, source), encoding="utf-8")
    suite = eval_suite(result, target, evals) if evals is not None else None
    for line in report(result, target, package, suite):
        out.print(escape(line))
    raise typer.Exit(1 if result.left_out else 0)


@import_app.command("promptflow")
def import_promptflow(source: Annotated[Path, typer.Argument(metavar="flow.dag.yaml", help=_(
                          "a Prompt Flow flow (its folder holds the prompt and Python files it names)"))],
                      output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE", help=_(
                          "where to write the playbook (default: playbooks/<flow folder>.yaml)"))] = None,
                      force: Annotated[bool, typer.Option("--force", help=_("overwrite an existing playbook"))] = False,
                      evals: Annotated[Path, typer.Option("--evals", metavar="DIR", help=_(
                          "where to write the flow's eval suite (its variants, data and evaluation), if it has one"
                      ))] = Path("evals"),
                      ) -> None:
    """Translate a Prompt Flow flow (flow.dag.yaml) into a playbook, and its variants and data into an eval suite."""
    from runner.importers import promptflow
    from runner.importers.dify import ImportRefused
    from runner.importers.naming import slug

    flow_file = source / "flow.dag.yaml" if source.is_dir() else source
    if not flow_file.is_file():
        error_line(_("{path}: no such flow file").format(path=flow_file))
        raise typer.Exit(2)
    try:
        result = promptflow.translate(flow_file, slug(output.stem, "imported") if output else None)
    except ImportRefused as exc:
        error_line(f"{flow_file}: {exc}")
        raise typer.Exit(2) from None
    _write(result, output or Path("playbooks") / f"{result.name}.yaml", force, flow_file.parent.name, evals)
