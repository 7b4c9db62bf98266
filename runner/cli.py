"""The `playbook` command. Heavy modules (litellm, langgraph) load only inside commands that run.

Exit codes: 0 done · 1 run failed · 2 user error (bad playbook, inputs, edits) · 3 waiting for
approval · 4 cancelled.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from runner.errors import PlaybookError, RunError

EXIT = {"done": 0, "failed": 1, "waiting": 3, "cancelled": 4}  # 130: interrupted (runner/interrupt.py)
app = typer.Typer(name="playbook", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="Run YAML playbooks for product-operations work: LLM steps, tools, approvals.\n\n"
                       "Exit codes: 0 done, 1 failed, 2 user error, 3 waiting for approval, 4 cancelled.")
runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(exc: PlaybookError | RunError) -> typer.Exit:
    if isinstance(exc, PlaybookError):
        for diagnostic in exc.diagnostics:
            _error_line(str(diagnostic))
        return typer.Exit(2)
    _error_line(str(exc))
    return typer.Exit(1)


def _error_line(text: str) -> None:
    err.print("[red]error[/] ", end="")
    err.print(text, markup=False)


def _warnings(playbook: Any) -> None:
    for diagnostic in playbook.warnings:
        err.print("[yellow]warning[/] ", end="")
        err.print(str(diagnostic), markup=False, soft_wrap=True)


def _project() -> Any:
    from runner.config import load_project

    return load_project()


def _parse_inputs(pairs: list[str], file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if file is not None:
        from runner.spec.yaml_loader import safe_load

        try:
            data = safe_load(file.read_text(encoding="utf-8"), str(file))  # YAML, or JSON (a subset of it)
        except OSError as exc:
            raise PlaybookError(f"{file}: cannot read inputs: {exc.strerror}") from None
        if not isinstance(data, dict):
            raise PlaybookError(f"{file}: an inputs file holds name: value pairs, got {type(data).__name__}")
        values.update(data)
    for pair in pairs:
        if "=" not in pair:
            raise PlaybookError(f"--input '{pair}': write it as name=value")
        name, value = pair.split("=", 1)
        values[name.strip()] = value
    return values


def _report(outcome: Any, currency: str) -> None:
    usage = f"tokens {outcome.tokens_in + outcome.tokens_out:,} · cost {outcome.cost:.4f} {currency}"
    if outcome.status == "waiting":
        p = outcome.pending or {}
        out.print(f"\n[bold yellow]‖ waiting for approval[/]: {p.get('title')} (step {p.get('step')})")
        out.print(json.dumps(p.get("draft"), ensure_ascii=False, indent=2)[:3000], markup=False)
        out.print(f"\nrun id: {outcome.run_id}   [dim]{usage}[/]")
        out.print(f"  approve:  playbook approve {outcome.run_id}", markup=False)
        if p.get("editable"):
            out.print(f"  edit:     playbook approve {outcome.run_id} --set {p['editable'][0]}='…'  "
                      f"(editable: {', '.join(p['editable'])})", markup=False)
        out.print(f"  reject:   playbook reject {outcome.run_id} --comment '…'", markup=False)
    elif outcome.status == "done":
        if outcome.problems:  # done, but not silently: say what the run went on past
            from runner.nodes.on_error import describe

            out.print(f"\n[bold yellow]✓ done with {len(outcome.problems)} tolerated error(s)[/] {outcome.run_id}"
                      f"   [dim]{usage}[/]")
            for problem in outcome.problems:
                out.print(f"  [yellow]![/] {describe(problem)}", soft_wrap=True)
        else:
            out.print(f"\n[bold green]✓ done[/] {outcome.run_id}   [dim]{usage}[/]")
        for key, value in outcome.outputs.items():
            text = json.dumps(value, ensure_ascii=False, default=str)
            out.print(f"  {key}: {text[:200] + '…' if len(text) > 200 else text}", markup=False)
        out.print(f"  run folder: {outcome.run_dir}", markup=False)
    else:
        err.print(f"\n[bold red]× {outcome.status}[/] {outcome.run_id}: ", end="")
        err.print(str(outcome.error), markup=False, soft_wrap=True)
        for problem in outcome.problems:
            from runner.nodes.on_error import describe

            err.print(f"  went on past: {describe(problem)}", markup=False, soft_wrap=True)
        if outcome.status == "failed":
            err.print(f"  finished work is kept; fix the cause, then: playbook resume {outcome.run_id}",
                      markup=False, soft_wrap=True)


def _chat_cards(project: Any) -> Any:
    """The hook that sends approval cards and run notices, when playbook.toml names a channel."""
    if not (project.settings.server.get("approval_channel") or project.settings.server.get("notify_channel")):
        return None
    from runner.server.im import ApprovalCards

    return ApprovalCards(project)


def _execute(action: Any, run_id: str | None = None) -> None:
    """Run an async Runner action with console progress; exit with the run's status code. Ctrl-C (or
    SIGTERM) cancels the run at once: in-flight requests are dropped, the run is marked interrupted with
    what finished kept in the journal, and the process exits 130 within a moment."""
    from runner.execute import Runner
    from runner.progress import ConsoleProgress

    project = _project()
    cards = _chat_cards(project)
    runner = Runner(project, hooks=[ConsoleProgress(out, project.settings.currency), *([cards] if cards else [])])

    async def act() -> Any:
        outcome = await action(runner, project)
        if cards is not None:
            await cards.flush()  # the approval card or the notice leaves before the process does
        return outcome

    from runner.interrupt import drive

    try:
        outcome = drive(act(), db_path=project.db_path, run_id=run_id, on_stop=runner.close,
                        say=lambda text: err.print(f"\n{text}", markup=False))
    finally:
        runner.close()
    _report(outcome, project.settings.currency)
    raise typer.Exit(EXIT[outcome.status])


def _models_used(playbook: Any) -> set[str]:
    """Aliases the playbook's LLM and agent steps (and its sub-playbooks') call: only these are
    resolved up front, so a playbook with no model step prints no note about models."""
    spec = playbook.spec
    used = {s.model or spec.defaults.model for s in spec.steps if s.llm is not None or s.agent is not None}
    for child in playbook.children.values():
        used |= _models_used(child)
    return used


@app.command()
def run(playbook: Annotated[Path, typer.Argument(help="playbook YAML file")],
        input: Annotated[list[str], typer.Option("--input", "-i", help="name=value (repeatable)")] = [],  # noqa: B006
        inputs_file: Annotated[Path | None, typer.Option("--inputs", help="YAML or JSON file of inputs")] = None,
        max_cost: Annotated[float | None, typer.Option(help="override limits.max_cost")] = None,
        run_id: Annotated[str | None, typer.Option(help="choose the run id")] = None) -> None:
    """Run a playbook. Pauses at approvals and prints the commands to continue."""
    from runner.inputs import resolve_inputs
    from runner.validate import load_and_validate

    try:
        loaded = load_and_validate(playbook)
        _warnings(loaded)
        inputs = resolve_inputs(loaded.spec, _parse_inputs(input, inputs_file), file=str(playbook),
                                base_dir=loaded.path.parent)
        project = _project()
    except PlaybookError as exc:
        raise _fail(exc) from None
    for alias in sorted(_models_used(loaded)):
        project.resolve_model(alias)
    for notice in project.notices:
        err.print(f"[yellow]note[/] {notice}")

    from runner.execute import new_run_id

    run_id = run_id or new_run_id(loaded.spec.name)

    async def action(runner: Any, _: Any) -> Any:
        return await runner.start(loaded, inputs, run_id=run_id, max_cost=max_cost)

    _execute(action, run_id)


@app.command()
def validate(playbooks: Annotated[list[Path], typer.Argument(help="playbook files")]) -> None:
    """Check playbooks without running them (no model, no network)."""
    from runner.validate import load_and_validate

    failed = False
    for path in playbooks:
        try:
            _warnings(load_and_validate(path))
            out.print(f"[green]ok[/] {path}")
        except PlaybookError as exc:
            failed = True
            for diagnostic in exc.diagnostics:
                _error_line(str(diagnostic))
    raise typer.Exit(2 if failed else 0)


@app.command()
def graph(playbook: Path) -> None:
    """Print the compiled graph as mermaid."""
    from runner.compile import mermaid
    from runner.validate import load_and_validate

    try:
        out.print(mermaid(load_and_validate(playbook)), markup=False)
    except PlaybookError as exc:
        raise _fail(exc) from None


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
           suite: Annotated[bool, typer.Option("--suite", help="the eval suite schema instead")] = False) -> None:
    """Write the playbook (or eval suite) JSON Schema, for editors, to a file or stdout."""
    from runner.evals.suite import suite_json_schema
    from runner.spec.schema import playbook_json_schema

    text = json.dumps(suite_json_schema() if suite else playbook_json_schema(), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"wrote {output}")
    else:
        print(text)


@app.command()
def resume(run_id: str, max_cost: Annotated[float | None, typer.Option(help="new cost limit")] = None
           ) -> None:
    """Continue a failed or interrupted run; finished LLM calls, tool calls and batches are not repeated."""
    from runner.approvals_cli import timeout_decision

    async def action(runner: Any, project: Any) -> Any:
        decision = timeout_decision(runner.store, run_id)
        return await runner.resume(run_id, decision=decision, max_cost=max_cost)

    _guard(lambda: _execute(action, run_id))


@app.command()
def approve(run_id: str,
            set_: Annotated[list[str], typer.Option("--set", help="field=value edit (repeatable)")] = [],  # noqa: B006
            edits: Annotated[Path | None, typer.Option(help="JSON file of field edits")] = None,
            comment: Annotated[str | None, typer.Option()] = None,
            by: Annotated[str | None, typer.Option(help="who decides (default: OS user)")] = None) -> None:
    """Approve the draft a run is waiting on, optionally with edits to its editable fields."""
    _decide(run_id, "approve", set_, edits, comment, by)


@app.command()
def reject(run_id: str, comment: Annotated[str, typer.Option(help="what to change")],
           by: Annotated[str | None, typer.Option()] = None) -> None:
    """Reject the draft; with on_reject the step re-runs with ${{ approval.comment }}."""
    _decide(run_id, "reject", [], None, comment, by)


def _decide(run_id: str, action_name: str, pairs: list[str], edits_file: Path | None,
            comment: str | None, by: str | None) -> None:
    from runner.approvals_cli import build_decision

    async def action(runner: Any, project: Any) -> Any:
        decision = build_decision(runner.store, run_id, action_name, pairs, edits_file, comment,
                                  by or _user(), time.time())
        return await runner.resume(run_id, decision=decision)

    _guard(lambda: _execute(action, run_id))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _guard(fn: Any) -> None:
    try:
        fn()
    except (PlaybookError, RunError) as exc:
        raise _fail(exc) from None


@app.command()
def cancel(run_id: str) -> None:
    """Cancel a waiting or running run (a running one stops at its next step or batch)."""
    def act() -> None:
        from runner.execute import Runner

        runner = Runner(_project())
        try:
            out.print(f"{run_id}: {runner.cancel(run_id)}")
        finally:
            runner.close()

    _guard(act)


@app.command()
def tools() -> None:
    """List every tool with its arguments."""
    from runner.cli_views import print_tools

    print_tools(out)


@runs_app.command("list")
def runs_list(limit: int = 30) -> None:
    """Recent runs with status, duration, tokens and cost."""
    from runner.cli_views import print_runs

    print_runs(out, _project(), limit)


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """One run: status, inputs, outputs, steps, approvals."""
    from runner.cli_views import show_run

    _guard(lambda: show_run(out, _project(), run_id))


@runs_app.command("logs")
def runs_logs(run_id: str, raw: bool = False) -> None:
    """The run's events (events.jsonl)."""
    from runner.cli_views import show_logs

    _guard(lambda: show_logs(out, _project(), run_id, raw))


from runner import cli_eval, cli_schedule, cli_server  # noqa: E402, F401  (register `eval`, `scheduler`, `schedule …`, `serve`)


def main() -> None:
    try:
        app()
    except (PlaybookError, RunError) as exc:
        _fail(exc)
        sys.exit(exc.exit_code)
