"""Sheets and charts are built in worker threads: the event loop goes on while a big workbook is written, and
two steps writing sheets of one workbook at the same time both end up in it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from runner.testing import call_tool
from tests.conftest import run_playbook, write_playbook

TWO_SHEETS = """
name: two_sheets
steps:
  - id: load
    tool: sheet.read
    with: {path: many.csv}
  - id: one
    needs: [load]
    tool: sheet.write
    with: {path: book.xlsx, sheet: 甲, rows: "${{ steps.load.rows }}"}
  - id: two
    needs: [load]
    tool: sheet.write
    with: {path: book.xlsx, sheet: 乙, rows: [{名称: 一, 数量: 1}, {名称: 二, 数量: 2}]}
outputs: {path: "${{ steps.one.path }}"}
"""


def test_a_big_workbook_is_written_while_the_loop_goes_on(tmp_path: Path) -> None:
    rows = [{"编号": i, "评论": f"第 {i} 条评论，" * 4, "分数": i % 10} for i in range(30000)]

    async def both() -> tuple[int, Any]:
        ticks = 0
        task = asyncio.ensure_future(call_tool("sheet.write", {"path": "big.xlsx", "rows": rows}, run_dir=tmp_path))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks, task.result()

    ticks, out = asyncio.run(both())
    assert out.count == 30000 and ticks > 10
    assert sum(1 for _ in load_workbook(tmp_path / "big.xlsx", read_only=True).active.iter_rows()) == 30001


def test_two_steps_writing_one_workbook_at_once_keep_both_sheets(project_dir: Path) -> None:
    (project_dir / "many.csv").write_text("编号,内容\n" + "".join(f"{i},第{i}行\n" for i in range(3000)),
                                          encoding="utf-8")
    outcome = run_playbook(write_playbook(project_dir, TWO_SHEETS))
    assert outcome.status == "done", outcome.error
    book = load_workbook(Path(outcome.run_dir) / "book.xlsx")
    assert sorted(book.sheetnames) == ["乙", "甲"]
    assert book["乙"]["A2"].value == "一" and book["甲"].max_row == 3001


HOLD_A_TURN = """
import asyncio, sys
from runner.cpu_slots import cpu_turn

async def hold():
    async with cpu_turn():
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(hold())
"""


def test_a_cpu_bound_step_waits_for_a_cpu_turn_and_its_timeout_counts_from_then(project_dir: Path,
                                                                                 monkeypatch: Any) -> None:
    """Another run holds this machine's only CPU turn for longer than the step's 6 s timeout: the step waits for
    the turn, says so, and then runs to the end — waiting for a CPU is not hanging. (6 s, not less: the tool's
    first call loads its libraries, seconds on a machine loaded by other work.)"""
    import json
    import os
    import subprocess
    import sys
    import time

    monkeypatch.setenv("PLAYBOOK_CPU_SLOTS", "1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_TURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        path = write_playbook(project_dir, """
name: busy
steps:
  - id: dedupe
    timeout: 6
    tool: text.dedupe
    with: {rows: [物流太慢了，等了一周, 物流太慢了，等了一周, 客服态度很好]}
outputs: {kept: "${{ steps.dedupe.count }}"}
""")
        run = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--run-id", "busy"],
                               cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        events = project_dir / ".playbook" / "runs" / "busy" / "events.jsonl"
        deadline = time.monotonic() + 60
        while not (events.exists() and "在等 CPU" in events.read_text(encoding="utf-8")):
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.05)
        time.sleep(7)  # the turn stays held past the step's timeout
        assert run.poll() is None  # still waiting, not failed by its timeout
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and "在等 CPU" in out, err
        done = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
        assert any(e.get("event") == "run_end" and e.get("status") == "done" for e in done)
    finally:
        holder.kill()
        holder.wait()
