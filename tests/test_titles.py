"""Titles, not keys, wherever a person reads: the schema's `title:` (or an input's title or short
description) labels the final outputs, `runs show`, the run page and a written workbook's headers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openpyxl

from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook
from tests.test_server import client

PLAYBOOK = """
name: titled
inputs:
  topic: {type: string, description: 话题名称（写一个词）}
  n: {type: integer, default: 2, title: 条数}
steps:
  - id: tag
    map: ${{ range(inputs.n) | list }}
    llm:
      prompt: 给第 ${{ item }} 条打标签（${{ inputs.topic }}）
      output: {name: {type: string, title: 名称}, ok: {type: boolean, title: 合格}}
  - id: save
    tool: sheet.write
    with: {path: tags.xlsx, rows: "${{ steps.tag.items }}"}
  - id: save_data
    tool: sheet.write
    with: {path: tags.jsonl, rows: "${{ steps.tag.items }}"}
  - id: pick
    llm:
      prompt: 选出最好的（${{ inputs.topic }}）
      output:
        best: {type: string, title: 最佳标签}
        tags: {type: list, title: 全部标签, items: {word: {type: string, title: 词}}}
outputs:
  best: ${{ steps.pick.output.best }}
  tags: ${{ steps.pick.tags }}
  count: ${{ steps.tag.items | length }}
  saved: {value: "${{ steps.save.path }}", title: 标签表}
"""


def test_titles_label_outputs_runs_show_the_run_page_and_workbook_headers(project_dir: Path,
                                                                            server: FakeLLMServer) -> None:
    server.add_rule("打标签", {"name": "物流", "ok": True})
    server.add_rule("选出最好的", {"best": "物流", "tags": [{"word": "物流"}, {"word": "价格"}]})
    path = write_playbook(project_dir, PLAYBOOK)
    done = cli("run", str(path), "-i", "topic=快递", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert "最佳标签：物流" in done.stdout and "全部标签：[{词：物流}；{词：价格}]" in done.stdout
    assert "count：2" in done.stdout  # an output with no schema keeps its key
    assert re.search(r"标签表：\S+tags\.xlsx", done.stdout)  # `{value: …, title: …}`: the playbook's own label
    run_dir = next((project_dir / ".playbook" / "runs").iterdir())

    book = openpyxl.load_workbook(run_dir / "tags.xlsx", read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    # titles as headers (the map's own `item` has none), yes/no in words
    assert rows == [("名称", "合格", "item"), ("物流", "是", 0), ("物流", "是", 1)]
    data = [json.loads(line) for line in (run_dir / "tags.jsonl").read_text(encoding="utf-8").splitlines()]
    assert data[0] == {"name": "物流", "ok": True, "item": 0}  # a jsonl file is data: keys and true/false kept

    shown = cli("runs", "show", run_dir.name, cwd=project_dir)
    assert shown.returncode == 0, shown.stderr
    assert "话题名称：快递" in shown.stdout and "条数：2" in shown.stdout and "最佳标签：物流" in shown.stdout

    with client(project_dir) as http:
        page = http.get(f"/runs/{run_dir.name}").text
    assert "<dt>话题名称</dt>" in page and "<dt>最佳标签</dt>" in page
    assert "<th>词</th>" in page  # an output table's column headers are its items' titles
