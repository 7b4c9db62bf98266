"""Read-only views for the CLI: tools, runs list, run details, run logs."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from runner.config import Project
from runner.engine.nodes.on_error import describe
from runner.errors import NoSuchRun
from runner.store import SqliteStore


def print_tools(out: Console) -> None:
    from runner.registry import all_tools

    for name, info in all_tools().items():
        out.print(f"[bold]{name}[/] — {info.description}")
        for field_name, f in info.input_model.model_fields.items():
            kind = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
            need = "required" if f.is_required() else f"default {_default_of(f)!r}"
            desc = f" — {f.description}" if f.description else ""
            out.print(f"    {f.alias or field_name}: {kind} ({need}){desc}", markup=False)


def _default_of(f: Any) -> Any:
    """A field's default as a user wrote it: a default_factory's value, never pydantic's sentinel."""
    return f.default_factory() if f.default_factory is not None else f.default


def _duration(run: dict[str, Any]) -> str:
    end = run["ended_at"] or (time.time() if run["status"] == "running" else None)
    return f"{end - run['started_at']:.1f}s" if end else "-"


def print_runs(out: Console, project: Project, limit: int) -> None:
    if not project.db_path.exists():
        out.print(f"no runs yet in {project.root} (runs belong to the folder they were started in; "
                  "--project DIR or PLAYBOOK_PROJECT=DIR names another)", markup=False)
        return
    store = SqliteStore(project.db_path)
    table = Table()
    table.add_column("run id", no_wrap=True)
    for name in ("playbook", "status", "started", "duration", "tokens", "cost"):
        table.add_column(name)
    for run in store.list_runs(limit):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"]))
        row = (run["id"], run["playbook"], run["status"], started, _duration(run),
               f"{run['tokens_in'] + run['tokens_out']:,}", f"{run['cost']:.4f}")
        if out.is_terminal:
            table.add_row(*row)
        else:  # piped: one tab-separated line per run, easy to grep and cut
            print("\t".join(row))
    if out.is_terminal:
        out.print(table)
    store.close()


def _get(project: Project, run_id: str) -> tuple[SqliteStore, dict[str, Any]]:
    if not project.db_path.exists():  # never leave a .playbook/ folder behind in a folder that has no runs
        raise NoSuchRun(run_id, str(project.db_path))
    store = SqliteStore(project.db_path)
    run = store.get_run(run_id)
    if run is None:
        store.close()
        raise NoSuchRun(run_id, str(project.db_path))
    return store, run


def show_run(out: Console, project: Project, run_id: str) -> None:
    store, run = _get(project, run_id)
    out.print(f"[bold]{run['id']}[/]  {run['playbook']}  status: [bold]{run['status']}[/]")
    out.print(f"file: {run['path']}   duration: {_duration(run)}   tokens: "
              f"{run['tokens_in']:,} in / {run['tokens_out']:,} out   cost: {run['cost']:.4f}", markup=False)
    out.print("inputs: " + json.dumps(run["inputs"], ensure_ascii=False), markup=False)
    if run["error"]:
        out.print(f"[red]error:[/] {run['error']}")
    for problem in run.get("problems") or []:
        out.print(f"[yellow]went on past:[/] {describe(problem)}", soft_wrap=True)
    if run["pending"]:
        out.print(f"waiting for approval: {run['pending'].get('title')} (step {run['pending'].get('step')})")
    if run["outputs"]:
        out.print("outputs: " + json.dumps(run["outputs"], ensure_ascii=False, indent=2)[:4000], markup=False)
    for decision in store.approvals(run["id"]):
        out.print(f"approval {decision['step']}#{decision['visit']}: {decision['action']} by {decision['by']}"
                  f" at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(decision['at']))}"
                  f"{' — ' + decision['comment'] if decision['comment'] else ''}; changed: "
                  f"{', '.join(d['path'] for d in decision['diff'] or []) or 'nothing'}", markup=False)
    out.print(f"run folder: {project.run_dir(run['id'])}", markup=False)
    store.close()


def show_logs(out: Console, project: Project, run_id: str, raw: bool) -> None:
    store, run = _get(project, run_id)
    store.close()
    path = project.run_dir(run["id"]) / "events.jsonl"
    if not path.exists():
        out.print("no events yet")
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
