"""The run page reads its steps from the store (written as the run goes), not by re-reading events.jsonl on
every refresh: with the events file gone, the page still shows every step, its status, map progress, usage
and output; a waiting run's approval step reads 待审核."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from runner.config import load_project
from runner.server import create_app
from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

PLAYBOOK = """
name: paged
steps:
  - id: notes
    map: "${{ range(5) | list }}"
    as: n
    llm: {prompt: "第 ${{ n }} 条", output: {text: {type: string, title: 一句话}}}
  - id: check
    approval: {title: 看一下, show: "${{ steps.notes.output }}"}
outputs: {count: "${{ steps.notes.items | length }}"}
"""


def test_the_run_page_needs_no_events_file(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, PLAYBOOK)
    waiting = cli("run", str(path), "--run-id", "paged", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stderr
    (project_dir / ".playbook" / "runs" / "paged" / "events.jsonl").unlink()
    with TestClient(create_app(load_project(project_dir)), client=("127.0.0.1", 50000),
                    base_url="http://127.0.0.1:8600") as http:
        page = http.get("/runs/paged").text
    steps = page.split('id="steps"')[1].split("<h3>产出文件</h3>")[0]
    assert "<td>notes</td>" in steps and "已完成" in steps and "5/5 项" in steps
    assert "<td>check</td>" in steps and "待审核" in steps
    assert "一句话" in steps  # the output, labelled by its schema
