"""A text a workbook cannot hold (a control character in a review, or in a model's reply) no longer fails the run
after every LLM call was paid for: the characters are taken out, the run says how many and in which column."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook


def test_control_characters_are_taken_out_and_counted(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("写标题", "标题\x1b\x18很好")
    path = write_playbook(project_dir, """
name: controls
steps:
  - {id: title, llm: {prompt: 写标题}}
  - id: save
    tool: sheet.write
    with:
      path: out.xlsx
      rows:
        - {评论: "物流太慢了，等了一周\\x0b才到", 标题: "${{ steps.title.output }}"}
        - {评论: 正常的一条, 标题: 无}
outputs: {path: "${{ steps.save.path }}"}
""")
    done = cli("run", str(path), "--run-id", "c1", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert "去掉了 3 个工作簿存不下的控制字符（标题 2 个，评论 1 个）" in done.stdout, done.stdout
    book = openpyxl.load_workbook(next((project_dir / ".playbook" / "runs" / "c1").rglob("out.xlsx")))
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert rows == [("评论", "标题"), ("物流太慢了，等了一周才到", "标题很好"), ("正常的一条", "无")]
