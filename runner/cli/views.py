"""Read-only views for the CLI: tools, runs list, run details, run logs."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.cli.common import schemas_of
from runner.config import Project
from runner.engine.liveness import duration, shown_status
from runner.engine.nodes.on_error import describe
from runner.engine.step_log import where_it_stopped
from runner.errors import NoSuchRun
from runner.i18n import _
from runner.store import Store, has_store, open_store, store_location
from runner.wording import field_schema, label, number, readable, status


def print_tools(out: Console) -> None:
    from runner.registry import all_tools

    for name, info in all_tools().items():
        out.print(f"[bold]{name}[/] — ", end="")
        out.print(_(info.description), markup=False)  # a built-in tool's words are in the catalog (catalog.py)
        for field_name, f in info.input_model.model_fields.items():
            kind = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
            need = _("required") if f.is_required() else _("default {value}").format(value=repr(_default_of(f)))
            desc = " — " + _(f.description) if f.description else ""
            out.print(f"    {f.alias or field_name}: {kind} ({need}){desc}", markup=False)


def _default_of(f: Any) -> Any:
    """A field's default as a user wrote it: a default_factory's value, never pydantic's sentinel."""
    return f.default_factory() if f.default_factory is not None else f.default


def _duration(project: Project, run: dict[str, Any]) -> str:
    seconds = duration(run, project.run_dir(run["id"].split(".")[0]))
    return _("{seconds} s").format(seconds=number(seconds, 1)) if seconds is not None else "—"


def print_runs(out: Console, project: Project, limit: int) -> None:
    if not has_store(project):
        out.print(_("No runs under {folder} yet (runs belong to the folder they were started in; --project DIR or "
                    "PLAYBOOK_PROJECT=DIR names another project folder)").format(folder=project.root), markup=False)
        return
    store = open_store(project)
    table = Table()
    headers = (_("Run id"), _("Playbook"), _("Status"), _("Started"), _("Took"), "tokens",
               _("Cost ({currency})").format(currency=project.settings.currency))
    for i, name in enumerate(headers):
        table.add_column(name, no_wrap=i == 0)
    if not out.is_terminal:
        print("\t".join(headers))  # piped: a header line, then one tab-separated line per run
    for run in store.list_runs(limit):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"]))
        row = (run["id"], run["playbook"], status(shown_status(run)), started, _duration(project, run),
               number(run["tokens_in"] + run["tokens_out"]), f"{run['cost']:.4f}")
        if out.is_terminal:
            table.add_row(*row)
        else:  # piped: one tab-separated line per run, easy to grep and cut
            print("\t".join(row))
    if out.is_terminal:
        out.print(table)
    store.close()


def _get(project: Project, run_id: str) -> tuple[Store, dict[str, Any]]:
    if not has_store(project):  # never leave a .playbook/ folder behind in a folder that has no runs
        raise NoSuchRun(run_id, store_location(project))
    store = open_store(project)
    run = store.get_run(run_id)
    if run is None:
        store.close()
        raise NoSuchRun(run_id, store_location(project))
    return store, run


def show_run(out: Console, project: Project, run_id: str) -> None:
    store, run = _get(project, run_id)
    shown = shown_status(run)
    out.print(f"[bold]{run['id']}[/]  {escape(run['playbook'])}  " + _("Status") + f"：[bold]{status(shown)}[/]")
    out.print(_("File: {path}   Took: {took}   tokens: in {tokens_in} / out {tokens_out}   Cost: {cost} {currency}"
                ).format(path=run["path"], took=_duration(project, run), tokens_in=number(run["tokens_in"]),
                         tokens_out=number(run["tokens_out"]), cost=f"{run['cost']:.4f}",
                         currency=project.settings.currency), markup=False)
    schemas = schemas_of(run)
    out.print(_("Inputs: ") + _("; ").join(f"{label(k, schemas['inputs'])}：{readable(v, 200)}"
                                  for k, v in (run["inputs"] or {}).items()), markup=False)
    if shown == "interrupted" and run["status"] == "running":
        reached = where_it_stopped(store, project.run_dir(run["id"].split(".")[0]), run["id"])
        where = _(", stopped in step {step}").format(step=reached["step"]) if reached else ""
        if reached and reached.get("total"):
            where += _(" ({done} of {total} items done)").format(done=number(reached["done"]),
                                                                  total=number(reached["total"]))
        gone = _("the process running it (pid {pid}) is gone{where}; what finished is kept. To continue: "
                 "playbook resume {run_id}").format(pid=run["pid"], where=where, run_id=run["id"].split(".")[0])
        out.print(f"[red]{status('interrupted')}：[/]{escape(gone)}", soft_wrap=True)
    elif run["error"]:
        out.print("[red]" + _("Error") + "：[/]", end="")
        out.print(str(run["error"]), markup=False)
    for problem in run.get("problems") or []:
        out.print("[yellow]" + escape(_("Went on past an error (on_error): ")) + "[/]", end="")
        out.print(describe(problem), markup=False, soft_wrap=True)
    if run["pending"]:
        out.print(_("Waiting for approval: {title} (step {step})").format(
            title=run["pending"].get("title"), step=run["pending"].get("step")), markup=False)
    if run["outputs"]:
        out.print(_("Outputs:"), markup=False)
        for key, value in run["outputs"].items():
            shape = schemas["outputs"]
            out.print(f"  {label(key, shape)}：{readable(value, 600, field_schema(shape, key))}", markup=False)
    for decision in store.approvals(run["id"]):
        comment = _(", comment: {text}").format(text=decision["comment"]) if decision["comment"] else ""
        changes = ", ".join(d["path"] for d in decision["diff"] or []) or _("none")
        out.print(_("Approval of {step} (visit {visit}): {decision} by {by}, {when}{comment}; changed: {changes}")
                  .format(step=decision["step"], visit=decision["visit"], decision=status(decision["action"]),
                          by=decision["by"], when=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(decision["at"])),
                          comment=comment, changes=changes), markup=False)
    out.print(_("Run folder: {path}").format(path=project.run_dir(run["id"])), markup=False)
    store.close()


def show_logs(out: Console, project: Project, run_id: str, raw: bool) -> None:
    store, run = _get(project, run_id)
    store.close()
    path = project.run_dir(run["id"]) / "events.jsonl"
    if not path.exists():
        out.print(_("no events yet"))
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if raw:
            print(line)
            continue
        event = json.loads(line)
        stamp = time.strftime("%H:%M:%S", time.localtime(event.pop("ts")))
        kind = event.pop("event")
        event.pop("run_id", None)
        detail = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:120]}" for k, v in event.items())
        out.print(f"{stamp} {kind:<12} {detail}", markup=False)
