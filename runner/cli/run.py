"""`playbook run`, `resume`, `approve`, `reject` and `cancel`: start a run and move it along."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import (
    EXIT,
    err,
    execute,
    fail,
    guard,
    out,
    playbook_path,
    print_warnings,
    project_here,
    project_with_runs,
    report,
)
from runner.cli.observing import RunLogJson, start_logs
from runner.errors import PlaybookError
from runner.i18n import _
from runner.messages import kind_of
from runner.wording import status

MAX_INPUTS_BYTES = 5_000_000  # an --inputs file of values; tables and documents go in as `file` inputs


def parse_inputs(pairs: list[str], file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if file is not None:
        from runner.dsl.yaml_loader import safe_load

        try:
            if (size := file.stat().st_size) > MAX_INPUTS_BYTES:
                raise PlaybookError(_("{file}: an inputs file is at most {limit:g} MB (this one is {size:.1f} MB); "
                                      "pass a large table or document as a `type: file` input").format(
                    file=file, limit=MAX_INPUTS_BYTES / 1e6, size=size / 1e6))
            data = safe_load(file.read_text(encoding="utf-8"), str(file))  # YAML, or JSON (a subset of it)
        except OSError as exc:
            raise PlaybookError(_("{file}: cannot read inputs: {reason}").format(file=file, reason=exc.strerror)) \
                from None
        if not isinstance(data, dict):
            raise PlaybookError(_("{file}: an inputs file holds name: value pairs, not {kind}").format(
                file=file, kind=kind_of(data)))
        values.update(data)
    for pair in pairs:
        if "=" not in pair:
            raise PlaybookError(_("--input '{pair}': write it as name=value").format(pair=pair))
        name, value = pair.split("=", 1)
        values[name.strip()] = value
    return values


@app.command()
def run(playbook: Annotated[Path, typer.Argument(metavar="FILE", help=_("playbook YAML file"))],
        input: Annotated[list[str], typer.Option("--input", "-i", help=_("name=value (repeatable)"))
                         ] = [],  # noqa: B006
        inputs_file: Annotated[Path | None, typer.Option("--inputs", help=_("YAML or JSON file of inputs"))] = None,
        max_cost: Annotated[float | None, typer.Option(help=_("override limits.max_cost"))] = None,
        run_id: Annotated[str | None, typer.Option(help=_("choose the run id"))] = None,
        detach: Annotated[bool, typer.Option("--detach", help=_("hand the run to the workers ([queue] broker) "
                                                                "and return at once with its id"))] = False,
        log_json: RunLogJson = False) -> None:
    """Run a playbook. Pauses at approvals and prints the commands to continue. With a [queue] broker the
    run goes to `playbook worker`s; this command follows its progress (or, with --detach, returns)."""
    from runner.dsl.validate import load_and_validate
    from runner.engine.preflight import prepare_inputs

    try:
        playbook = playbook_path(playbook)
        loaded = load_and_validate(playbook)
        print_warnings(loaded)
        project = project_here()
        inputs = prepare_inputs(loaded, parse_inputs(input, inputs_file), project, file=str(playbook))
        if log_json:
            start_logs(project, True, "INFO")
    except PlaybookError as exc:
        raise fail(exc) from None
    for alias in sorted(loaded.model_aliases()):  # only these are resolved up front: no note about unused ones
        project.resolve_model(alias)
    for notice in project.notices:
        err.print("[yellow]" + _("note") + f"[/] {escape(notice)}")

    from runner.engine.execute import new_run_id

    run_id = run_id or new_run_id(loaded.spec.name)
    if project.settings.queue.broker or detach:
        from runner.team.queue import enqueue_start

        guard(lambda: queued(project, run_id, detach, lambda store: enqueue_start(
            project, store, loaded, inputs, run_id, max_cost)))
        return

    async def action(runner: Any, _: Any) -> Any:
        return await runner.start(loaded, inputs, run_id=run_id, max_cost=max_cost)

    execute(action, run_id, existing=False)


@app.command()
def resume(run_id: str, max_cost: Annotated[float | None, typer.Option(help=_("new cost limit"))] = None,
           log_json: RunLogJson = False) -> None:
    """Continue a failed or interrupted run; finished LLM calls, tool calls and batches are not repeated."""
    from runner.engine.decisions import timeout_decision

    if log_json:
        guard(lambda: start_logs(project_with_runs(run_id), True, "INFO"))
    if (project := project_with_runs(run_id)).settings.queue.broker:
        from runner.team.queue import enqueue_continue, send

        def hand_over(runner: Any) -> None:
            queued_run = runner.store.get_run(run_id)
            if queued_run is not None and queued_run["status"] == "queued":  # its message lost (Redis restarted
                # without its data, flushed): send it again; a worker claims the run once however many arrive
                send(project, "resume" if runner.store.step_rows(queued_run["id"]) else "start", queued_run["id"])
                return
            decision = timeout_decision(runner.store, run_id)
            run = runner.claim_resume(run_id, decision=decision, max_cost=max_cost)
            enqueue_continue(project, runner.store, run["id"], decision)

        guard(lambda: claimed(project, run_id, hand_over))
        return

    async def action(runner: Any, project: Any) -> Any:
        decision = timeout_decision(runner.store, run_id)
        return await runner.resume(run_id, decision=decision, max_cost=max_cost)

    guard(lambda: execute(action, run_id))


@app.command()
def approve(run_id: str,
            set_: Annotated[list[str], typer.Option("--set", help=_("field=value edit (repeatable)"))] = [],  # noqa: B006
            edits: Annotated[Path | None, typer.Option(help=_("JSON file of field edits"))] = None,
            comment: Annotated[str | None, typer.Option(help=_("a note for the record"))] = None,
            by: Annotated[str | None, typer.Option(help=_("who decides (default: OS user)"))] = None) -> None:
    """Approve the draft a run is waiting on, optionally with edits to its editable fields."""
    decide(run_id, "approve", set_, edits, comment, by)


@app.command()
def reject(run_id: str, comment: Annotated[str, typer.Option(help=_("what to change"))],
           by: Annotated[str | None, typer.Option(help=_("who decides (default: OS user)"))] = None) -> None:
    """Reject the draft; with on_reject the step re-runs with ${{ approval.comment }}."""
    decide(run_id, "reject", [], None, comment, by)


def decide(run_id: str, action_name: str, pairs: list[str], edits_file: Path | None,
            comment: str | None, by: str | None) -> None:
    from runner.engine.decisions import build_decision

    if (project := project_with_runs(run_id)).settings.queue.broker:
        from runner.team.queue import enqueue_continue

        def hand_over(runner: Any) -> None:
            decision = build_decision(runner.store, run_id, action_name, pairs, edits_file, comment,
                                      by or os_user(), time.time())
            run = runner.claim_resume(run_id, decision=decision)
            enqueue_continue(project, runner.store, run["id"], decision)

        guard(lambda: claimed(project, run_id, hand_over))
        return

    async def action(runner: Any, project: Any) -> Any:
        decision = build_decision(runner.store, run_id, action_name, pairs, edits_file, comment,
                                  by or os_user(), time.time())
        return await runner.resume(run_id, decision=decision)

    guard(lambda: execute(action, run_id))


def queued(project: Any, run_id: str, detach: bool, enqueue: Any) -> None:
    """Hand a new run to the workers; follow it unless `detach`."""
    from runner.cli.follow import stopped_following  # loads the module before the run is queued (see below)
    from runner.cli.interrupt import ctrl_c_after
    from runner.cli.team import team_broker
    from runner.store import open_store

    team_broker(project)
    store = open_store(project)
    try:
        try:
            with ctrl_c_after():  # recorded as queued and its message sent, or neither
                enqueue(store)
        finally:
            store.close()
        if detach:
            out.print(_("{run_id}: queued for a worker (follow: playbook runs show {run_id})").format(run_id=run_id),
                      markup=False)
            return
        followed(project, run_id)
    except KeyboardInterrupt:
        # a Ctrl-C from the moment the run is queued — before following has begun, too — leaves it to the workers
        # and says so, as a Ctrl-C while following does
        store = open_store(project)
        try:
            queued_already = store.get_run(run_id) is not None
        finally:
            store.close()
        if not queued_already:
            raise
        stopped_following(out, run_id)


def claimed(project: Any, run_id: str, hand_over: Any) -> None:
    """Claim an existing run here (a decision recorded once, a resume taken once), hand it to the workers and
    follow it from where its events end now."""
    from runner.assembly import assemble
    from runner.cli.follow import events_size, stopped_following
    from runner.cli.interrupt import ctrl_c_after

    handed_then_interrupted = False
    runner = assemble(project)
    try:
        full_id = (runner.store.get_run(run_id) or {"id": run_id})["id"]
        offset = events_size(project, full_id)
        try:
            with ctrl_c_after():  # the decision recorded, the run queued and its message sent — or none of it
                hand_over(runner)
        except KeyboardInterrupt:  # raised only once the hand-over is done
            handed_then_interrupted = True
    finally:
        runner.close()
    if handed_then_interrupted:  # the run is with the workers: it goes on there, as after a Ctrl-C while following
        stopped_following(out, full_id)
    try:
        followed(project, full_id, offset)
    except KeyboardInterrupt:  # before following began
        stopped_following(out, full_id)


def followed(project: Any, run_id: str, offset: int = 0) -> None:
    """Print a worker's run as it goes, then its outcome; exit with its status code."""
    from runner.cli.follow import follow

    outcome = follow(project, run_id, out, offset=offset)
    report(outcome, project.settings.currency)
    raise typer.Exit(EXIT[outcome.status])


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def cancelled(result: str) -> str:
    """What `Runner.cancel` did, in words."""
    if result == "cancelled":
        return status(result)
    if result == "cancel requested":
        return _("cancel requested: the run stops at its next step or batch")
    return _("nothing to cancel: the run is {status}").format(status=status(result))


@app.command()
def cancel(run_id: str) -> None:
    """Cancel a waiting or running run (a running one stops at its next step or batch)."""
    def act() -> None:
        from runner.assembly import assemble

        runner = assemble(project_with_runs(run_id))
        try:
            out.print(f"{run_id}：{cancelled(runner.cancel(run_id))}", markup=False)
        finally:
            runner.close()

    guard(act)
