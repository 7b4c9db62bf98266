"""Five runs at once in one project folder all finish (no `database is locked`)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from runner.testing import FakeLLMServer
from tests.conftest import ROOT


def test_five_runs_at_once_all_finish(project_dir: Path, server: FakeLLMServer) -> None:
    command = [sys.executable, "-m", "runner", "run", str(ROOT / "playbooks" / "feedback_digest.yaml"),
               "-i", f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", "review=false", "-i", "limit=1000"]
    runs = [subprocess.Popen(command, cwd=project_dir, env={**os.environ}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [(p.wait(timeout=600), p.communicate()[1][-400:]) for p in runs]
    assert [code for code, _ in results] == [0] * 5, results
    with sqlite3.connect(project_dir / ".playbook" / "checkpoints.db") as db:
        per_run = db.execute("SELECT count(*) FROM checkpoints GROUP BY thread_id").fetchall()
    assert len(per_run) == 5 and all(count <= 2 for (count,) in per_run)  # saved when a run stops, not per step
