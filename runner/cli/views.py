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
from runner.store import Store, has_store, open_store, store_location
from runner.wording import field_schema, label, readable, status


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


def _duration(project: Project, run: dict[str, Any]) -> str:
    seconds = duration(run, project.run_dir(run["id"].split(".")[0]))
    return f"{seconds:.1f} 秒" if seconds is not None else "-"


def print_runs(out: Console, project: Project, limit: int) -> None:
    if not has_store(project):
        out.print(f"{project.root} 下还没有运行记录（运行记录属于发起它的目录；用 --project DIR 或 "
                  "PLAYBOOK_PROJECT=DIR 指向别的项目目录）", markup=False)
        return
    store = open_store(project)
    table = Table()
    headers = ("运行 id", "剧本", "状态", "开始", "耗时", "tokens", f"费用（{project.settings.currency}）")
    for i, name in enumerate(headers):
        table.add_column(name, no_wrap=i == 0)
    if not out.is_terminal:
        print("\t".join(headers))  # piped: a header line, then one tab-separated line per run
    for run in store.list_runs(limit):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"]))
        row = (run["id"], run["playbook"], status(shown_status(run)), started, _duration(project, run),
               f"{run['tokens_in'] + run['tokens_out']:,}", f"{run['cost']:.4f}")
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
    out.print(f"[bold]{run['id']}[/]  {run['playbook']}  状态：[bold]{status(shown)}[/]")
    out.print(f"文件：{run['path']}   耗时：{_duration(project, run)}   tokens：输入 {run['tokens_in']:,} / 输出 "
              f"{run['tokens_out']:,}   费用：{run['cost']:.4f}", markup=False)
    schemas = schemas_of(run)
    out.print("输入：" + "；".join(f"{label(k, schemas['inputs'])}：{readable(v, 200)}"
                                  for k, v in (run["inputs"] or {}).items()), markup=False)
    if shown == "interrupted" and run["status"] == "running":
        reached = where_it_stopped(store, project.run_dir(run["id"].split(".")[0]), run["id"])
        where = f"，停在步骤 {reached['step']}" if reached else ""
        if reached and reached.get("total"):
            where += f"（已完成 {reached['done']:,} / {reached['total']:,} 项）"
        out.print(f"[red]已中断：[/]运行它的进程（pid {run['pid']}）已经不在了{escape(where)}；已完成的部分都保存着，"
                  f"继续运行：playbook resume {run['id'].split('.')[0]}", soft_wrap=True)
    elif run["error"]:
        out.print("[red]错误：[/]", end="")
        out.print(str(run["error"]), markup=False)
    for problem in run.get("problems") or []:
        out.print("[yellow]出错后按 on_error 继续过：[/]", end="")
        out.print(describe(problem), markup=False, soft_wrap=True)
    if run["pending"]:
        out.print(f"等待审核：{run['pending'].get('title')}（步骤 {run['pending'].get('step')}）", markup=False)
    if run["outputs"]:
        out.print("输出：", markup=False)
        for key, value in run["outputs"].items():
            shape = schemas["outputs"]
            out.print(f"  {label(key, shape)}：{readable(value, 600, field_schema(shape, key))}", markup=False)
    for decision in store.approvals(run["id"]):
        out.print(f"审核 {decision['step']}（第 {decision['visit']} 次）：{status(decision['action'])}，审核人 "
                  f"{decision['by']}，{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(decision['at']))}"
                  f"{'，意见：' + decision['comment'] if decision['comment'] else ''}；改动："
                  f"{', '.join(d['path'] for d in decision['diff'] or []) or '无'}", markup=False)
    out.print(f"运行目录：{project.run_dir(run['id'])}", markup=False)
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
