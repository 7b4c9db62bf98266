"""A secret a model echoes into an output is masked everywhere it leaves the process: console, runs show,
run.json, events, the approval page, the run page and the JSON API."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from runner.config import load_project
from runner.server import create_app
from runner.testing import FakeLLMServer
from tests.conftest import SECRET, cli, write_playbook

ECHO = """
name: echo
steps:
  - id: draft
    llm: {prompt: 写一段说明, output: {summary: string, note: string}}
  - id: review
    approval: {title: 审核, show: "${{ steps.draft.output }}", editable: [summary]}
outputs: {summary: "${{ steps.review.output.summary }}", note: "${{ steps.draft.note }}"}
"""


def test_an_echoed_key_never_leaves_the_process(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("写一段说明", {"summary": f"我的密钥是 {SECRET}", "note": f"key={SECRET}"})
    path = write_playbook(project_dir, ECHO)
    waiting = cli("run", str(path), "--run-id", "echo1", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stderr
    seen = [waiting.stdout + waiting.stderr, cli("runs", "show", "echo1", cwd=project_dir).stdout]
    with TestClient(create_app(load_project()), client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8600") as http:
        seen += [http.get("/api/runs/echo1").text, http.get("/runs/echo1").text, http.get("/runs/echo1/approval").text]
    done = cli("approve", "echo1", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    seen += [done.stdout + done.stderr, cli("runs", "show", "echo1", cwd=project_dir).stdout]
    run_dir = project_dir / ".playbook" / "runs" / "echo1"
    seen += [(run_dir / "run.json").read_text(encoding="utf-8"), (run_dir / "events.jsonl").read_text(encoding="utf-8")]
    assert all("***" in text or "密钥" not in text for text in seen)
    leaks = [i for i, text in enumerate(seen) if SECRET in text]
    assert not leaks, [seen[i][:300] for i in leaks]


def test_a_resumed_parent_gets_its_finished_sub_playbook_outputs_unmasked(project_dir: Path,
                                                                        server: FakeLLMServer) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    write_playbook(project_dir, """
name: child
steps:
  - {id: ask, llm: {prompt: 子流程说明, output: {note: string}}}
outputs: {note: "${{ steps.ask.note }}"}
""", "child.yaml")
    parent = write_playbook(project_dir, """
name: parent
steps:
  - {id: sub, playbook: child.yaml}
  - {id: use, llm: {prompt: "下游用到：${{ steps.sub.note }}"}}
outputs: {used: "${{ steps.use.output }}"}
""")
    server.add_rule("子流程说明", {"note": f"token {SECRET} end"})
    server.add_rule("下游用到", "好的", times=1, delay=30.0)  # the first downstream call hangs: the kill
    server.add_rule("下游用到", "好的")  # comes after the child finished; the resumed run's call answers
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(parent), "--run-id", "p1"],
                               cwd=project_dir, env={**os.environ}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not server.prompts("子流程说明"):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    while not server.prompts("下游用到"):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert cli("resume", "p1", cwd=project_dir).returncode == 0
    downstream = server.prompts("下游用到")
    assert downstream[-1] == f"下游用到：token {SECRET} end"  # the real value, not the masked one


def test_a_secret_echoed_url_encoded_or_in_base64_is_masked_too(project_dir: Path, server: FakeLLMServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A key inside a query string travels URL-encoded, one in a Basic header or a cookie in base64: those forms
    are the secret too, on every surface."""
    import base64
    from urllib.parse import quote

    token = "pk+live/Zx9=&q7T2vR4m"
    monkeypatch.setenv("PARTNER_TOKEN", token)
    encoded, basic = quote(token, safe=""), base64.b64encode(f"ops:{token}".encode()).decode()
    server.add_rule("写一段说明", {"summary": f"回调地址 https://x.example/cb?token={encoded}",
                               "note": f"Authorization: Basic {basic}"})
    path = write_playbook(project_dir, ECHO.replace("name: echo\n", "name: echo\nsecrets: [PARTNER_TOKEN]\n"))
    waiting = cli("run", str(path), "--run-id", "echo2", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stderr
    seen = [waiting.stdout + waiting.stderr, cli("runs", "show", "echo2", cwd=project_dir).stdout]
    with TestClient(create_app(load_project()), client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8600") as http:
        seen += [http.get("/api/runs/echo2").text, http.get("/runs/echo2").text, http.get("/runs/echo2/approval").text]
    run_dir = project_dir / ".playbook" / "runs" / "echo2"
    seen += [(run_dir / "events.jsonl").read_text(encoding="utf-8")]
    own = base64.b64encode(f"ops:{token}".encode()).decode()[4:-4]  # the part of the header that is the token's
    leaks = [(i, form) for i, text in enumerate(seen) for form in (token, encoded, own) if form in text]
    assert not leaks, leaks


def test_a_key_a_model_echoes_is_masked_in_the_files_the_run_writes(project_dir: Path, server: FakeLLMServer) -> None:
    """The model repeats the API key; the report and the workbook get `***` and the run says so — while a tool
    meant to carry credentials (http.request's headers) is not touched (tests/test_http_request.py)."""
    import openpyxl

    server.add_rule("写一段说明", {"summary": f"我的密钥是 {SECRET}", "note": "无"})
    path = write_playbook(project_dir, """
name: writes
steps:
  - id: draft
    llm: {prompt: 写一段说明, output: {summary: string, note: string}}
  - {id: report, tool: file.write, with: {path: report.md, content: "${{ steps.draft.summary }}"}}
  - {id: book, tool: sheet.write, with: {path: book.xlsx, rows: [{说明: "${{ steps.draft.summary }}"}]}}
""")
    done = cli("run", str(path), "--run-id", "writes", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("已替换成 ***") == 2, done.stdout
    run_dir = project_dir / ".playbook" / "runs" / "writes"
    assert (run_dir / "report.md").read_text(encoding="utf-8") == "我的密钥是 ***"
    workbook = openpyxl.load_workbook(run_dir / "book.xlsx", read_only=True)
    assert [c.value for row in workbook.active.iter_rows() for c in row] == ["说明", "我的密钥是 ***"]
    workbook.close()
