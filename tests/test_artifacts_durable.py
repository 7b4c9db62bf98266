"""Artifacts appear whole or not at all, and a workbook never silently loses a sheet an earlier step wrote."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl

from runner.testing import call_tool
from tests.conftest import cli, write_playbook


def _rows(n: int) -> list[dict[str, object]]:
    return [{"编号": i, "内容": f"第 {i} 条评论，内容写得比较长，足以让单元格换行显示" * 2} for i in range(n)]


def test_kill_9_while_a_workbook_is_saved_never_leaves_a_broken_file(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: big_book
steps:
  - id: load
    tool: sheet.read
    with: {path: big.csv}
  - id: first
    tool: sheet.write
    with: {path: book.xlsx, sheet: 第一页, rows: "${{ steps.load.rows }}"}
  - id: second
    tool: sheet.write
    with: {path: book.xlsx, sheet: 第二页, rows: "${{ steps.load.rows }}"}
outputs: {book: "${{ steps.second.path }}"}
""")
    (project_dir / "big.csv").write_text("编号,内容\n" + "".join(f"{r['编号']},{r['内容']}\n" for r in _rows(30000)),
                                         encoding="utf-8")
    rng = random.Random(7)
    book = None
    for trial in range(4):
        env = {**os.environ}
        process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--run-id", f"t{trial}"],
                                   cwd=project_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = project_dir / ".playbook" / "runs" / f"t{trial}" / "events.jsonl"
        while not events.exists() and process.poll() is None:  # the run exists (a loaded machine starts slowly)
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 5.0))  # then a kill at a random moment of its work
        process.send_signal(signal.SIGKILL)
        process.wait()
        book = project_dir / ".playbook" / "runs" / f"t{trial}" / "book.xlsx"
        if book.exists():  # whatever moment the kill came, the file on disk is a whole workbook
            openpyxl.load_workbook(book, read_only=True).close()
        for _ in range(3):  # resume until it finishes (a kill may have left it mid-step, or after the end)
            done = cli("resume", f"t{trial}", cwd=project_dir)
            if done.returncode == 0 or "is done; nothing to resume" in done.stderr:
                break
        assert done.returncode == 0 or "is done" in done.stderr, done.stderr
        workbook = openpyxl.load_workbook(book, read_only=True)
        assert workbook.sheetnames == ["第一页", "第二页"]
        assert [sum(1 for _ in workbook[s].iter_rows()) for s in workbook.sheetnames] == [30001, 30001]
        workbook.close()


def test_a_deleted_workbook_is_rebuilt_with_every_sheet(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: two_sheets
steps:
  - id: first
    tool: sheet.write
    with: {path: book.xlsx, sheet: 第一页, rows: [{a: 1}, {a: 2}]}
  - id: review
    approval: {title: 看一眼, show: 第一页写好了}
  - id: second
    tool: sheet.write
    with: {path: book.xlsx, sheet: 第二页, rows: [{b: 3}]}
outputs: {book: "${{ steps.second.path }}"}
""")
    waiting = cli("run", str(path), "--run-id", "r1", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stderr
    book = project_dir / ".playbook" / "runs" / "r1" / "book.xlsx"
    book.unlink()  # gone while the run waited (or half-written by a crash of an older version)
    done = cli("approve", "r1", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    workbook = openpyxl.load_workbook(book)
    assert workbook.sheetnames == ["第一页", "第二页"]
    assert [[c.value for c in row] for row in workbook["第一页"].iter_rows()] == [["a"], [1], [2]]
    assert workbook["第一页"].freeze_panes == "A2" and workbook["第一页"]["A1"].font.b


def test_an_append_repeated_by_a_rerun_of_its_step_is_written_once(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "好"}, {"id": 2, "text": "差"}]
    for _ in range(2):  # the same step run twice (a crash after the write, before the journal)
        asyncio.run(call_tool("sheet.write", {"path": "out.csv", "rows": rows, "mode": "append"}, run_dir=tmp_path))
    asyncio.run(call_tool("sheet.write", {"path": "out.csv", "rows": [{"id": 3, "text": "中"}], "mode": "append"},
                          run_dir=tmp_path))
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines == ["id,text", "1,好", "2,差", "3,中"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary file left behind


def test_a_write_cut_short_leaves_no_artifact_on_the_page_or_the_api(project_dir: Path) -> None:
    """A kill -9 during a write leaves its temporary `.<name>.<random>.part` file in the run folder: never listed
    as an artifact, nor served."""
    from starlette.testclient import TestClient

    from runner.config import load_project
    from runner.server import create_app

    path = write_playbook(project_dir, """
name: one_file
steps:
  - {id: save, tool: file.write, with: {path: report.md, content: 报告}}
""")
    assert cli("run", str(path), "--run-id", "cut", cwd=project_dir).returncode == 0
    (project_dir / ".playbook" / "runs" / "cut" / ".book.xlsx.k2j4x9.part").write_bytes(b"PK\x03\x04half")
    with TestClient(create_app(load_project(project_dir)), client=("127.0.0.1", 50000),
                    base_url="http://127.0.0.1:8600") as http:
        assert http.get("/api/runs/cut").json()["artifacts"] == ["report.md"]
        page = http.get("/runs/cut").text
        assert "report.md" in page and ".part" not in page
        assert http.get("/runs/cut/files/.book.xlsx.k2j4x9.part").status_code == 404
