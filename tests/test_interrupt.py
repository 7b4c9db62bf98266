"""Ctrl-C during a run: the process leaves at once with 130 and the run's real id; the run resumes and
repeats no finished call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

MAP = """
name: slow_map
steps:
  - id: each
    map: [一, 二, 三, 四, 五, 六]
    concurrency: 1
    llm: {prompt: "第 ${{ item }} 条"}
outputs: {answers: "${{ steps.each.output }}"}
"""


def _events(folder: Path) -> list[dict[str, object]]:
    runs = folder / ".playbook" / "runs"
    files = list(runs.glob("*/events.jsonl")) if runs.exists() else []
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]


def test_ctrl_c_stops_the_run_names_it_and_resume_repeats_nothing(project_dir: Path, server: FakeLLMServer) -> None:
    server.latency = 0.4
    path = write_playbook(project_dir, MAP)
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path)], cwd=project_dir,
                               env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(e.get("event") == "llm_call" for e in _events(project_dir)):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    server.latency = 60.0  # the next call hangs: Ctrl-C must not wait for it
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    run_id = err.split("继续运行：playbook resume ")[1].split()[0]
    shown = cli("runs", "show", run_id, cwd=project_dir)
    assert "状态：已中断" in shown.stdout and "运行未完成就被中断了" in shown.stdout
    assert "interrupted" not in shown.stdout  # the run's error in the user's language, as the Ctrl-C line was
    finished = [e for e in _events(project_dir) if e.get("event") == "llm_call"]
    server.latency = 0.0
    asked_before = len(server.requests)
    resumed = cli("resume", run_id, cwd=project_dir)
    assert resumed.returncode == 0, resumed.stderr
    asked_again = [r["prompt"] for r in server.requests[asked_before:]]
    done_items = {r["prompt"] for r in server.requests[:len(finished)]}
    assert len(asked_again) == 6 - len(finished) and not done_items & set(asked_again)


def test_ctrl_c_during_a_queueing_waits_for_it_to_finish_then_interrupts() -> None:
    """A run recorded as queued and its message sent are one act (runner/cli/run.py `queued`): a Ctrl-C between
    the two would leave a run waiting for a message that never went."""
    from runner.cli.interrupt import ctrl_c_after

    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt), ctrl_c_after():
        signal.raise_signal(signal.SIGINT)
        done.append("recorded")
        done.append("sent")
    assert done == ["recorded", "sent"]
    assert signal.getsignal(signal.SIGINT) == before  # as it was

    with pytest.raises(ValueError, match="the block's own"), ctrl_c_after():  # what the block raises goes first
        signal.raise_signal(signal.SIGINT)
        raise ValueError("the block's own")
