"""What every `playbook` command shares: the consoles, exit codes, error printing, the project of the
current folder, and running a Runner action with console progress (Ctrl-C aware)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from runner.errors import PlaybookError, RunError
from runner.i18n import _
from runner.wording import field_schema, label, outline, readable, status, usage_line

EXIT = {"done": 0, "failed": 1, "waiting": 3, "cancelled": 4, "moved": 1}  # 130: interrupted (runner/cli/interrupt.py)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(exc: PlaybookError | RunError) -> typer.Exit:
    if isinstance(exc, PlaybookError):
        for diagnostic in exc.diagnostics:
            error_line(str(diagnostic))
        return typer.Exit(2)
    error_line(str(exc))
    return typer.Exit(1)


def error_line(text: str) -> None:
    err.print("[red]" + _("error") + "[/] ", end="")
    err.print(text, markup=False)


def print_warnings(playbook: Any) -> None:
    for diagnostic in playbook.warnings:
        err.print("[yellow]" + _("warning") + "[/] ", end="")
        err.print(str(diagnostic), markup=False, soft_wrap=True)


def project_here() -> Any:
    from runner.config import load_project
    from runner.engine import liveness

    project = load_project()
    liveness.configure(project.settings.queue.heartbeat)  # `runs list` judges a run's owner as its driver does
    return project


def playbook_path(path: Path) -> Path:
    """A playbook path as given, else relative to the project (`--project DIR`), so the README's
    `playbooks/…` commands work from any folder once the project is named."""
    if path.exists() or path.is_absolute():
        return path
    try:
        in_project = project_here().root / path
    except PlaybookError:
        return path
    return in_project if in_project.exists() else path


def guard(fn: Any) -> None:
    try:
        fn()
    except (PlaybookError, RunError) as exc:
        raise fail(exc) from None


def schemas_of(run: dict[str, Any] | None) -> dict[str, Any]:
    """The labels of a run's inputs and outputs (see runner.dsl.labels), from the playbook text it ran."""
    from runner.dsl.labels import NO_SCHEMAS
    from runner.dsl.validate import run_schemas

    return run_schemas(run["path"], run["source"]) if run else NO_SCHEMAS


def report(outcome: Any, currency: str, schemas: dict[str, Any] | None = None) -> None:
    from runner.engine.approvals import cited
    from runner.engine.nodes.on_error import describe

    usage = escape(usage_line(outcome.tokens_in + outcome.tokens_out, outcome.cost, currency))
    if outcome.status == "waiting":
        p = outcome.pending or {}
        waiting = _("{title} (step {step})").format(title=p.get("title"), step=p.get("step"))
        out.print("\n[bold yellow]‖ " + _("Waiting for approval") + f"[/]：{escape(waiting)}")
        out.print(outline(p.get("draft"), p.get("schema")), markup=False)
        if quoted := cited(p.get("draft"), p.get("sources") or []):  # what the draft cites, to check it against
            out.print("\n" + _("Passages it cites:"), markup=False)
            for source in quoted:
                out.print(f"  [{source['cite']}] {source['text'][:300]}", markup=False, soft_wrap=True)
        out.print("\n" + _("Run id") + f"：{outcome.run_id}   [dim]{usage}[/]")
        out.print(_("  approve:  playbook approve {run_id}").format(run_id=outcome.run_id), markup=False)
        if p.get("editable"):
            fields = _("、").join(label(name, p.get("schema")) for name in p["editable"])
            out.print(_("  edit:     playbook approve {run_id} --set {field}='…'  (editable: {fields})").format(
                run_id=outcome.run_id, field=p["editable"][0], fields=fields), markup=False)
        out.print(_("  reject:   playbook reject {run_id} --comment '…'").format(run_id=outcome.run_id), markup=False)
    elif outcome.status == "done":
        if outcome.problems:  # done, but not silently: say what the run went on past
            went_on = _("✓ done, but {count} errors were skipped by on_error").format(count=len(outcome.problems))
            out.print(f"\n[bold yellow]{escape(went_on)}[/] {outcome.run_id}   [dim]{usage}[/]")
            for problem in outcome.problems:
                out.print(f"  [yellow]![/] {escape(describe(problem))}", soft_wrap=True)
        else:
            out.print(f"\n[bold green]✓ {status('done')}[/] {outcome.run_id}   [dim]{usage}[/]")
        for key, value in outcome.outputs.items():
            shape = (schemas or {}).get("outputs")
            out.print(f"  {label(key, shape)}：{readable(value, 200, field_schema(shape, key))}", markup=False)
        out.print(_("  Run folder: {path}").format(path=outcome.run_dir), markup=False)
    else:
        err.print(f"\n[bold red]× {status(outcome.status)}[/] {outcome.run_id}：", end="")
        err.print(str(outcome.error), markup=False, soft_wrap=True)
        for problem in outcome.problems:
            err.print(_("  went on past an error (on_error): {problem}").format(problem=describe(problem)),
                      markup=False, soft_wrap=True)
        if outcome.status == "failed" and outcome.resumable:
            err.print(_("  What finished is kept; once the cause is fixed, continue: playbook resume {run_id}").format(
                run_id=outcome.run_id), markup=False, soft_wrap=True)
        elif outcome.status == "failed":  # resume runs the same playbook text: only a corrected file gets past it
            err.print(_("  This is a problem in the playbook itself: correct it and start again with playbook run "
                        "(resume uses the same playbook and would fail here again)"), markup=False, soft_wrap=True)


def project_with_runs(run_id: str) -> Any:
    """The project, when it has any runs at all; a command about an existing run given in a folder that
    never ran anything says so, without leaving a `.playbook/` folder behind there."""
    from runner.errors import NoSuchRun
    from runner.store import has_store, store_location

    project = project_here()
    if not has_store(project):
        raise NoSuchRun(run_id, store_location(project))
    return project


def execute(action: Any, run_id: str | None = None, *, existing: bool = True) -> None:
    """Run an async Runner action with console progress; exit with the run's status code. Ctrl-C (or
    SIGTERM) cancels the run at once: in-flight requests are dropped, the run is marked interrupted with
    what finished kept in the journal, and the process exits 130 within a moment. `existing`: the action
    is about a run that must already be in this project (resume, approve, reject)."""
    from runner.assembly import assemble, settled
    from runner.cli.progress import ConsoleProgress

    project = project_with_runs(run_id) if existing and run_id else project_here()
    progress = ConsoleProgress(out, project.settings.currency)
    runner = assemble(project, hooks=[progress])
    if existing and run_id and (so_far := runner.store.get_run(run_id)) is not None:
        progress.tokens, progress.cost = so_far["tokens_in"] + so_far["tokens_out"], so_far["cost"]

    async def act() -> Any:
        return await settled(runner, action(runner, project))  # the card or notice leaves before the process

    from runner.cli.interrupt import drive

    try:
        outcome = drive(act(), project=project, run_id=run_id, on_stop=runner.close,
                        say=lambda text: err.print(f"\n{text}", markup=False))
        if outcome.status == "queued":  # handed to a team server's workers (a schedule's run-now): follow it there
            from runner.cli.follow import follow

            outcome = follow(project, outcome.run_id, out)
        schemas = schemas_of(runner.store.get_run(outcome.run_id))
    finally:
        runner.close()
    report(outcome, project.settings.currency, schemas)
    raise typer.Exit(EXIT[outcome.status])
