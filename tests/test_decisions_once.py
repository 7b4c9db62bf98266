"""One approval decision is recorded and applied exactly once: two at once, or a killed `approve`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

REVIEWED = """
name: reviewed
steps:
  - id: draft
    max_visits: 3
    llm:
      prompt: "写一段总结 ${{ approval.comment }}"
      output: {summary: string}
  - id: review
    approval: {title: 审核总结, show: "${{ steps.draft.output }}", editable: [summary], on_reject: draft}
  - id: publish
    llm: {prompt: "下游发布：${{ steps.review.output.summary }}"}
outputs: {published: "${{ steps.publish.output }}", summary: "${{ steps.review.output.summary }}"}
"""


def _start(project_dir: Path, server: FakeLLMServer, run_id: str) -> Path:
    server.add_rule("写一段总结", {"summary": "初稿"})
    path = write_playbook(project_dir, REVIEWED)
    waiting = cli("run", str(path), "--run-id", run_id, cwd=project_dir)
    assert waiting.returncode == 3, waiting.stderr
    return path


def _spawn(project_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=project_dir, env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_approvals_at_once_apply_one(project_dir: Path, server: FakeLLMServer) -> None:
    for pair, run_id in ((("approve", "approve"), "both_approve"), (("approve", "reject"), "approve_reject")):
        _start(project_dir, server, run_id)
        before = len(server.requests)
        processes = [_spawn(project_dir, action, run_id, *(["--comment", "重写"] if action == "reject" else []))
                     for action in pair]
        results = [(p.wait(timeout=300), p.communicate()[1]) for p in processes]
        codes = sorted(code for code, _ in results)
        assert codes in ([0, 1], [1, 3]), results  # one applied (done, or back at the review after a reject)
        assert any("already decided" in err or "not waiting" in err or "no longer waiting" in err
                   for _, err in results), results
        asked = [r["prompt"] for r in server.requests[before:]]
        downstream = [p for p in asked if p.startswith("下游发布")]
        redrafts = [p for p in asked if p.startswith("写一段总结")]
        assert len(downstream) + len(redrafts) == 1, asked  # one branch, once


def test_a_killed_approve_is_continued_with_its_decision(project_dir: Path, server: FakeLLMServer) -> None:
    _start(project_dir, server, "killed")
    server.latency = 30.0  # the step after the approval hangs: the kill lands after the decision is recorded
    approving = _spawn(project_dir, "approve", "killed", "--set", "summary=审核后的总结")
    database = project_dir / ".playbook" / "state.db"
    deadline = time.monotonic() + 120
    while True:
        with sqlite3.connect(database) as db:
            if db.execute("SELECT count(*) FROM approvals WHERE run_id='killed'").fetchone()[0]:
                break
        assert time.monotonic() < deadline and approving.poll() is None
        time.sleep(0.1)
    approving.send_signal(signal.SIGKILL)
    approving.wait()
    server.latency = 0.0
    resumed = cli("resume", "killed", cwd=project_dir)
    assert resumed.returncode == 0, resumed.stderr  # continued with the approve; not asked again (exit 3)
    assert "审核后的总结" in resumed.stdout
    late = cli("reject", "killed", "--comment", "不对", cwd=project_dir)
    assert late.returncode == 1 and "not waiting" in late.stderr
    with sqlite3.connect(database) as db:
        decided = db.execute("SELECT action FROM approvals WHERE run_id='killed'").fetchall()
    assert decided == [("approve",)]


def test_an_approve_for_a_run_already_moving_on_says_it_is_not_waiting(project_dir: Path,
                                                                       server: FakeLLMServer) -> None:
    """A second `approve` that reads the run after the first moved it on (running, its owner alive) hears that
    it is not waiting — not that it should wait for the run or cancel it (CI saw this race)."""
    _start(project_dir, server, "moving")
    server.latency = 30.0  # the step after the approval hangs: the run stays running while we ask again
    first = _spawn(project_dir, "approve", "moving")
    deadline = time.monotonic() + 60
    database = project_dir / ".playbook" / "state.db"
    while True:
        with sqlite3.connect(database) as db:
            if db.execute("SELECT status FROM runs WHERE id='moving'").fetchone()[0] == "running":
                break
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    from runner.config import load_project
    from runner.engine.execute import Runner
    from runner.errors import RunError

    runner = Runner(load_project())  # what a second `approve` does once its checks of the draft have passed
    try:
        with pytest.raises(RunError, match="is running, not waiting for approval"):
            runner.claim_resume("moving", decision={"action": "approve", "by": "me", "at": time.time()})
    finally:
        runner.close()
        first.send_signal(signal.SIGKILL)
        first.wait()
