"""The small things a new user trips over: a report opens (sandboxed) instead of downloading, the page has an icon,
descriptions are cut with an ellipsis, a sub-playbook's steps are named and its tokens counted on its parent's
step, `approve` continues the run's token count, and `[local] threads` is a setting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from runner.config import load_project
from runner.errors import PlaybookError
from runner.server import create_app
from runner.server.pages import shorten
from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

REPORT = """
name: reports
steps:
  - id: page
    tool: file.write
    with: {path: report.html, content: "<h1>周报</h1><script>alert(1)</script>"}
  - id: notes
    tool: file.write
    with: {path: notes.md, content: "# 备忘"}
outputs: {path: "${{ steps.page.path }}"}
"""

CHILD = """
name: child
steps:
  - id: summary
    llm: {prompt: 用一句话总结}
outputs: {text: "${{ steps.summary.output }}"}
"""

PARENT = """
name: parent
steps:
  - id: digest
    playbook: child.yaml
  - id: check
    approval: {title: 看一下, show: "${{ steps.digest.output }}"}
  - id: after
    llm: {prompt: "再写一句：${{ steps.digest.output.text }}"}
outputs: {text: "${{ steps.after.output }}"}
"""


def http(project_dir: Path) -> TestClient:
    return TestClient(create_app(load_project(project_dir)), client=("127.0.0.1", 50000),
                      base_url="http://127.0.0.1:8600")


def test_reports_open_in_the_browser_sandboxed_and_the_page_has_an_icon(project_dir: Path) -> None:
    path = write_playbook(project_dir, REPORT)
    done = cli("run", str(path), "--run-id", "r1", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    with http(project_dir) as client:
        report = client.get("/runs/r1/files/report.html")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert report.headers["content-disposition"].startswith("inline")
        policy = report.headers["content-security-policy"]
        assert "sandbox" in policy and "default-src 'none'" in policy and "script-src" not in policy
        notes = client.get("/runs/r1/files/notes.md")
        assert notes.headers["content-type"].startswith("text/plain") and "inline" in notes.headers[
            "content-disposition"] and notes.text == "# 备忘"
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_descriptions_are_cut_with_an_ellipsis() -> None:
    text = "从热点榜单和订阅源里找出与业务相关的话题，按相关度打分，给出今天就能做的动作，" * 3
    short = shorten(text, 60)
    assert short.endswith("…") and len(short) <= 61 and short[:-1] in text
    assert short[-2] not in "，、；"  # cut at a break, not after a comma
    assert shorten("短描述", 60) == "短描述"


def test_a_sub_playbook_is_named_and_counted_and_approve_continues_the_count(project_dir: Path,
                                                                            server: FakeLLMServer) -> None:
    write_playbook(project_dir, CHILD, "child.yaml")
    path = write_playbook(project_dir, PARENT, "parent.yaml")
    first = cli("run", str(path), "--run-id", "p1", cwd=project_dir)
    assert first.returncode == 3, first.stderr
    assert "▶ digest › summary" in first.stdout  # the child's step, named under its parent's
    events = [json.loads(line) for line in
              (project_dir / ".playbook" / "runs" / "p1" / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    digest = next(e for e in events if e["event"] == "step_end" and e["step"] == "digest" and e["run_id"] == "p1")
    assert digest["llm_calls"] == 1 and digest["tokens_in"] + digest["tokens_out"] > 0
    line = next(line for line in first.stdout.splitlines() if "✓ digest 已完成" in line)
    assert "1 次 LLM 调用" in line
    before = int(re.findall(r"累计：tokens ([\d,]+)", first.stdout)[-1].replace(",", ""))
    assert before > 0

    approved = cli("approve", "p1", cwd=project_dir)
    assert approved.returncode == 0, approved.stderr
    totals = [int(t.replace(",", "")) for t in re.findall(r"累计：tokens ([\d,]+)", approved.stdout)]
    final = int(re.search(r"✓ 已完成 p1\s+tokens ([\d,]+)", approved.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert totals[0] == before and totals[-1] > before and totals[-1] == final  # goes on, not from 0


def test_local_threads_is_a_setting(project_dir: Path) -> None:
    (project_dir / "playbook.toml").write_text("[local]\nthreads = 1\ncontext = 4096\n", encoding="utf-8")
    local = load_project(project_dir).settings.local
    assert (local.threads, local.context) == (1, 4096)
    (project_dir / "playbook.toml").write_text("[local]\nthreads = 0\n", encoding="utf-8")
    with pytest.raises(PlaybookError, match=r"local\.threads"):
        load_project(project_dir)


def test_number_filter_scales_to_wan_and_yi_and_labels_decisions() -> None:
    from runner.dsl.templates import render

    shown = render("${{ 1234567 | number(1, '万') }} ${{ 3200000000 | number(2, '亿') }} ${{ 9000.0 | number }} "
                   "${{ 'approve' | label }} ${{ 'reject' | label }}", {})
    assert shown == "123.5万 32亿 9,000 通过 驳回"


def test_an_outline_labels_nests_and_stops_at_its_line_limit() -> None:
    from runner.wording import outline

    schema = {"properties": {"plan": {"title": "计划", "items": {"properties": {"steps": {"title": "步骤"}}}},
                             "ok": {"title": "可以发"}}}
    draft = {"plan": [{"steps": [{"a": 1}], "note": None}], "ok": True, "empty": [], "ratio": 0.0}
    assert outline(draft, schema).splitlines() == [
        "计划：", "  1.", "    步骤：", "      1. a：1", "    note：—", "可以发：是", "empty：（空）", "ratio：0"]
    long = outline({"rows": [[i, [i]] for i in range(100)]}, max_lines=5).splitlines()
    assert len(long) == 6 and long[-1].startswith("…（还有")


def test_a_free_port_for_another_process_is_outside_the_range_connections_take_theirs_from() -> None:
    """A connection made meanwhile cannot take it before the server binds it (one did, under 4 test processes)."""
    import socket

    from runner.testing.servers import _ephemeral_start, free_port

    ports = {free_port() for _ in range(20)}
    assert all(1024 <= port < _ephemeral_start() for port in ports) and len(ports) > 1  # random, not one port
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports.pop()))  # and free
